package cutover

import (
	"context"
	"errors"
	"fmt"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// tenantRoute is what a move knows of one tenant's route.
type tenantRoute struct {
	tenant, database string
	// move is the ID of the move publishing.
	move string
	// epoch is the highest epoch seen or published for the tenant.
	epoch int64
	// touched: a route may have been published (a rollback must
	// supersede it).
	touched bool
}

// epochDetail is journaled by the steps that publish a route.
type epochDetail struct {
	Tenant   string `json:"tenant,omitempty"`
	Epoch    int64  `json:"epoch"`
	Instance string `json:"instance"`
	Paused   bool   `json:"paused"`
}

// publishRoute makes the tenant's route point at inst with the next epoch.
func (m *Mover) publishRoute(ctx context.Context, tr *tenantRoute, inst fleet.Instance, paused bool) (epochDetail, error) {
	route := flags.RouteTo(inst, tr.database, tr.epoch+1)
	route.Paused, route.Move = paused, tr.move
	tr.touched = true // even a failed Publish may have committed
	err := m.cfg.Publisher.Publish(ctx, tr.tenant, route)
	if errors.Is(err, flags.ErrStaleEpoch) && m.catchUpEpoch(ctx, tr) {
		// An earlier Publish of this move committed after all.
		route.Epoch = tr.epoch + 1
		err = m.cfg.Publisher.Publish(ctx, tr.tenant, route)
	}
	if errors.Is(err, flags.ErrStaleEpoch) {
		return epochDetail{}, fmt.Errorf("%w: %v", ErrRouteConflict, err)
	}
	if err != nil {
		return epochDetail{}, err
	}
	tr.epoch = route.Epoch
	return epochDetail{Tenant: tr.tenant, Epoch: route.Epoch, Instance: inst.ID, Paused: paused}, nil
}

// catchUpEpoch reads the tenant's published route and, if this move
// published it (a Publish that reported an error but committed), takes
// its epoch as the latest. It reports whether the epoch grew. A route of
// anyone else is a conflict the caller reports.
func (m *Mover) catchUpEpoch(ctx context.Context, tr *tenantRoute) bool {
	pr, ok := m.cfg.Publisher.(publishedReader)
	if !ok {
		return false
	}
	cur, found, err := pr.Published(ctx, tr.tenant)
	if err != nil || !found || cur.Epoch <= tr.epoch || cur.Move != tr.move {
		return false
	}
	tr.epoch = cur.Epoch
	return true
}

// currentRoute reads the tenant's route authoritatively when the
// Publisher can (publishedReader), else through Routes; found is false
// when no route was published.
func (m *Mover) currentRoute(ctx context.Context, tenant string) (flags.Route, bool, error) {
	if pr, ok := m.cfg.Publisher.(publishedReader); ok {
		return pr.Published(ctx, tenant)
	}
	r, err := m.cfg.Routes.Resolve(ctx, tenant)
	return r, err == nil, err
}
