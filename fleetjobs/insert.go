package fleetjobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// ErrMoveIDConflict: a move ID names one move, and this one is taken: a
// job of the same kind and move ID is already queued, running or kept
// completed with other arguments (the insert helpers refuse it, inserting
// nothing), or the journal has the ID moving another tenant or to another
// target (the worker cancels the job, changing nothing).
var ErrMoveIDConflict = errors.New("fleetjobs: the move ID names another move")

// Args are the arguments of daisychain's job kinds: MoveArgs, RetireArgs,
// ConvertArgs, TakeoverArgs, DrainArgs, RefillArgs and ChainArgs.
type Args interface {
	river.JobArgs
	validate() error
}

// Insert enqueues one of daisychain's jobs through the host's client.
// Arguments that are incomplete are refused with ErrInvalidArgs, naming
// the field, and nothing is inserted. opts may be nil; its UniqueOpts are
// replaced, since every job is unique by its ID (move, drain, chain...):
// inserting the same job again inserts nothing and returns the existing
// one (JobInsertResult.UniqueSkippedAsDuplicate); the same ID with other
// arguments is refused with ErrMoveIDConflict. Drain, refill and chain
// jobs need a worker with a Config.Planner to run.
func Insert[A Args](ctx context.Context, client *river.Client[pgx.Tx], args A, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.Insert(ctx, args, o)
	})
}

// InsertTx is Insert within the host's transaction: the job exists once
// tx commits.
func InsertTx[A Args](ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, args A, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.InsertTx(ctx, tx, args, o)
	})
}

// insert validates args, forces uniqueness by move ID, inserts, and
// refuses a duplicate whose arguments differ.
func insert[T Args](args T, opts *river.InsertOpts,
	do func(*river.InsertOpts) (*rivertype.JobInsertResult, error)) (*rivertype.JobInsertResult, error) {
	if err := args.validate(); err != nil {
		return nil, err
	}
	var o river.InsertOpts
	if opts != nil {
		o = *opts
	}
	o.UniqueOpts = uniqueByID
	res, err := do(&o)
	if err != nil {
		return nil, fmt.Errorf("fleetjobs: insert %s: %w", args.Kind(), err)
	}
	if res.UniqueSkippedAsDuplicate {
		var existing T
		if err := json.Unmarshal(res.Job.EncodedArgs, &existing); err != nil {
			return nil, fmt.Errorf("fleetjobs: insert %s: read job %d's arguments: %w", args.Kind(), res.Job.ID, err)
		}
		if !reflect.DeepEqual(existing, args) {
			return nil, fmt.Errorf("%w: job %d (%s) has %+v, asked for %+v", ErrMoveIDConflict, res.Job.ID, res.Job.State, existing, args)
		}
	}
	return res, nil
}
