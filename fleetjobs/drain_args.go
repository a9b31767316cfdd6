package fleetjobs

import (
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/internal/idcheck"
)

// Job kinds of drains and refills.
const (
	KindDrain  = "daisychain.drain"
	KindRefill = "daisychain.refill"
)

// InFlightDefault is how many of a drain's or a refill's moves are queued
// or running at once when its arguments leave InFlight 0. The moves out
// of one instance and into one, across every drain and worker, are
// bounded by the Movers' cutover.Config.MovesPerSource and
// MovesPerTarget.
const InFlightDefault = 4

// DrainArgs asks for an instance to be drained: planned once
// (drain.Runner.DryRun, through Config.Planner), then one move job per
// tenant, InFlight at a time. The job ends once every move has settled.
type DrainArgs struct {
	// DrainID names the drain in the journal (a journal of kind
	// cutover.KindDrain) and makes the job unique. Each move's ID is
	// DrainID + "/" + its tenant's ID.
	DrainID string `json:"drain_id" river:"unique"`
	// Instance is the instance to drain.
	Instance string `json:"instance"`
	// Threshold is the level to drain it to (see drain.PlanDrain).
	Threshold drain.Threshold `json:"threshold"`
	// Exclude, Onto and MaxMoves are those of drain.DrainOpts.
	Exclude  []string `json:"exclude,omitempty"`
	Onto     []string `json:"onto,omitempty"`
	MaxMoves int      `json:"max_moves,omitempty"`
	// InFlight is how many of its moves are queued or running at once.
	// Default InFlightDefault.
	InFlight int `json:"in_flight,omitempty"`
	// KeepSources keeps each moved tenant's fenced source copy for the
	// rollback period (insert a RetireArgs job to end it); by default
	// each is retired by its move job once moved, as drain.Runner does.
	KeepSources bool `json:"keep_sources,omitempty"`
}

// Kind implements river.JobArgs.
func (DrainArgs) Kind() string { return KindDrain }

// InsertOpts implements river.JobArgsWithInsertOpts: one job per drain ID.
func (DrainArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: uniqueByID} }

func (a DrainArgs) validate() error {
	errs := fanOutErrors("DrainID", a.DrainID, a.Instance, a.InFlight, a.MaxMoves)
	return argsError(KindDrain, errs)
}

// RefillArgs asks for an instance to be refilled from Sources: planned
// once (drain.Runner.DryRunRefill), then moved as a drain is.
type RefillArgs struct {
	// RefillID names the refill in the journal and makes the job unique;
	// each move's ID is RefillID + "/" + its tenant's ID.
	RefillID string `json:"refill_id" river:"unique"`
	// Instance is the instance to refill, from the Sources.
	Instance string   `json:"instance"`
	Sources  []string `json:"sources"`
	// Level is the level to fill it to (see drain.PlanRefill).
	Level drain.Threshold `json:"level"`
	// MaxMoves is drain.RefillOpts'.
	MaxMoves int `json:"max_moves,omitempty"`
	// InFlight and KeepSources are as in DrainArgs.
	InFlight    int  `json:"in_flight,omitempty"`
	KeepSources bool `json:"keep_sources,omitempty"`
}

// Kind implements river.JobArgs.
func (RefillArgs) Kind() string { return KindRefill }

// InsertOpts implements river.JobArgsWithInsertOpts: one job per refill ID.
func (RefillArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: uniqueByID} }

func (a RefillArgs) validate() error {
	errs := fanOutErrors("RefillID", a.RefillID, a.Instance, a.InFlight, a.MaxMoves)
	if len(a.Sources) == 0 {
		errs = append(errs, errors.New("Sources is empty: name the instances to take tenants from"))
	}
	return argsError(KindRefill, errs)
}

// fanOutErrors checks what drains and refills share.
func fanOutErrors(idField, id, instance string, inFlight, maxMoves int) []error {
	var errs []error
	// The ID and a tenant's make each move's ID, which must fit too.
	if err := idcheck.Check(idField, id); err != nil {
		errs = append(errs, err)
	} else if len(id) > idcheck.MaxLen/2 {
		errs = append(errs, fmt.Errorf("%s is %d bytes: at most %d, so that it and a tenant's ID name each move", idField, len(id), idcheck.MaxLen/2))
	}
	if instance == "" {
		errs = append(errs, errors.New("Instance is empty: the ID of the instance"))
	}
	if inFlight < 0 {
		errs = append(errs, fmt.Errorf("InFlight is %d: it must not be negative (0 means %d)", inFlight, InFlightDefault))
	}
	if maxMoves < 0 {
		errs = append(errs, fmt.Errorf("MaxMoves is %d: it must not be negative (0 means no limit)", maxMoves))
	}
	return errs
}
