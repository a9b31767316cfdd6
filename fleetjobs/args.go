package fleetjobs

import (
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/sentinel"
)

// Job kinds, as River stores them in river_job.kind. Every kind of this
// library starts with "daisychain.", so a host's own kinds never collide.
const (
	KindMove   = "daisychain.move"
	KindRetire = "daisychain.retire"
	// KindTakeover continues a move whose job is held by a dead worker.
	KindTakeover = "daisychain.move_takeover"
)

// ErrInvalidArgs: a job's arguments are incomplete; the error names the
// field. An insert helper refuses them, inserting nothing; a worker that
// meets them (a job inserted by other means) cancels the job. It is also
// fleet.ErrInvalid under errors.Is.
var ErrInvalidArgs = sentinel.New("fleetjobs: invalid job arguments", fleet.ErrInvalid)

// uniqueByID makes a job unique by the fields tagged river:"unique" (its
// move ID) within its kind, in every state but cancelled and discarded:
// inserting it again while it waits, runs or is kept completed inserts
// nothing.
var uniqueByID = river.UniqueOpts{ByArgs: true}

// MoveArgs asks for one tenant move. It carries IDs only: the worker finds
// connections, credentials and routes through its own Mover.
type MoveArgs struct {
	// MoveID names the move in the journal (cutover.Request.ID), and
	// makes the job unique: one job per move ID.
	MoveID string `json:"move_id" river:"unique"`
	// Tenant is the tenant's ID in the catalog.
	Tenant string `json:"tenant"`
	// Target is the ID of the instance to move it to.
	Target string `json:"target"`
}

// Kind implements river.JobArgs.
func (MoveArgs) Kind() string { return KindMove }

// InsertOpts implements river.JobArgsWithInsertOpts, so a job inserted
// with River's own Insert is unique by its move ID too.
func (MoveArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: uniqueByID} }

func (a MoveArgs) validate() error {
	var errs []error
	if a.MoveID == "" {
		errs = append(errs, errors.New("MoveID is empty: name the move, as Resume will"))
	}
	if a.Tenant == "" {
		errs = append(errs, errors.New("Tenant is empty: the tenant's ID in the catalog"))
	}
	if a.Target == "" {
		errs = append(errs, errors.New("Target is empty: the ID of the instance to move to"))
	}
	return argsError(KindMove, errs)
}

// TakeoverArgs asks for what is left of a move whose own job is held by
// a worker that died: a drain enqueues it rather than wait for River to
// rescue that job after MoveTimeout. It does what a move job does, by the
// journal; if the first worker was alive after all, the tenant's lock and
// the journal keep the two apart (the second finds the tenant busy, then
// the move over). One takeover job per move ID.
type TakeoverArgs struct {
	MoveID string `json:"move_id" river:"unique"`
	Tenant string `json:"tenant"`
	Target string `json:"target"`
	// Generation counts the takeovers of the move: a takeover whose own
	// worker died is taken over by the next.
	Generation int `json:"generation" river:"unique"`
}

// Kind implements river.JobArgs.
func (TakeoverArgs) Kind() string { return KindTakeover }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (TakeoverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: uniqueByID} }

func (a TakeoverArgs) validate() error { return a.moveArgs().validate() }

func (a TakeoverArgs) moveArgs() MoveArgs {
	return MoveArgs{MoveID: a.MoveID, Tenant: a.Tenant, Target: a.Target}
}

// RetireArgs asks for a done move's source copy to be dropped
// (cutover.Mover.Retire), ending its rollback period. Insert it with
// InsertOpts.ScheduledAt at the end of that period.
type RetireArgs struct {
	// MoveID is the move to retire; one retire job per move ID.
	MoveID string `json:"move_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (RetireArgs) Kind() string { return KindRetire }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RetireArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: uniqueByID} }

func (a RetireArgs) validate() error {
	if a.MoveID == "" {
		return argsError(KindRetire, []error{errors.New("MoveID is empty: the ID of the done move to retire")})
	}
	return nil
}

func argsError(kind string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalidArgs, kind, errors.Join(errs...))
}
