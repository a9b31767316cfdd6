package cutover

import (
	"context"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
)

// Steps of Convert besides those of a tenant move.
const (
	StepReplica  Step = "replica"  // start (or resume) building the converted replica
	StepPromote  Step = "promote"  // the replica, caught up to the barrier, becomes a primary
	StepRegister Step = "register" // the promoted replica opened to its tenants and registered in the catalog
)

// ConvertRequest asks for a whole instance to move onto a converted
// replica of itself.
type ConvertRequest struct {
	// ID names the conversion; Resume takes it. Default: the instance ID
	// and the start time.
	ID string
	// Instance is the ID of the instance to convert.
	Instance string
	// NewInstance is the ID the converted replica gets in the catalog.
	NewInstance string
	// Limits of the new instance. Default: the old instance's.
	Limits *fleet.Limits
}

// Convert moves every tenant of an instance at once onto a converted
// replica of it, built by Config.Converter: one copy for the whole
// instance and one window for all its tenants, whose routes switch
// together to the new instance, which the catalog then records. It runs
// the steps of Move over the set of the instance's tenants (the copy, a
// promoted replica instead of a stream, aside): the same budget,
// rollback, journal, report and Resume, and a window whose cost does not
// grow with the tenants (one quiesce query, one fence round, one batch of
// routes, one round trip to open the databases on the new instance). The
// old instance is left fenced and intact.
//
// A request is refused, changing nothing, when its ID is already used
// (ErrMoveIDUsed), when a tenant of the instance is being moved
// (ErrMoveInProgress), or when a move onto or off the instance runs, or
// it is being converted already (ErrInstanceBusy); the error names the
// tenant or the instance and who holds it.
func (m *Mover) Convert(ctx context.Context, req ConvertRequest) (*Report, error) {
	r, err := m.prepareConvert(ctx, req)
	if err != nil {
		return nil, err
	}
	return m.runNew(ctx, r)
}

// prepareConvert checks the request against the catalog, changing
// nothing.
func (m *Mover) prepareConvert(ctx context.Context, req ConvertRequest) (*run, error) {
	if m.cfg.Converter == nil {
		return nil, fmt.Errorf("%w: Config.Converter is nil: Convert needs one (replica/physical for local instances)", ErrPreflight)
	}
	if req.Instance == "" || req.NewInstance == "" || req.Instance == req.NewInstance {
		return nil, fmt.Errorf("%w: ConvertRequest needs Instance and a different NewInstance", ErrPreflight)
	}
	src, err := m.cfg.Catalog.Instance(ctx, req.Instance)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	if _, err := m.cfg.Catalog.Instance(ctx, req.NewInstance); err == nil {
		return nil, fmt.Errorf("%w: instance %q is already registered: choose a new ID for the converted replica", ErrPreflight, req.NewInstance)
	}
	tenants, err := m.cfg.Catalog.Tenants(ctx, req.Instance)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	id := req.ID
	if id == "" {
		id = fmt.Sprintf("convert-%s-%s", req.Instance, time.Now().UTC().Format("20060102T150405.000"))
	}
	limits := src.Limits
	if req.Limits != nil {
		limits = *req.Limits
	}
	p := plan{Kind: kindConvert, Move: id, Instance: src.ID, NewInstance: req.NewInstance, Limits: limits,
		Tenants: tenants}
	return m.newRun(p, tenants, src, fleet.Instance{}), nil
}
