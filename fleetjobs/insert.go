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

// InsertMove enqueues a move job through the host's client. opts may be
// nil; its UniqueOpts are replaced, since a move job is unique by its move
// ID: inserting the same move again inserts nothing and returns the
// existing job (JobInsertResult.UniqueSkippedAsDuplicate).
func InsertMove(ctx context.Context, client *river.Client[pgx.Tx], args MoveArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, args.validate, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.Insert(ctx, args, o)
	})
}

// InsertMoveTx is InsertMove within the host's transaction: the job
// exists once tx commits.
func InsertMoveTx(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, args MoveArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, args.validate, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.InsertTx(ctx, tx, args, o)
	})
}

// InsertRetire enqueues a retire job, unique by move ID like a move job.
// Schedule it at the end of the rollback period with opts.ScheduledAt.
func InsertRetire(ctx context.Context, client *river.Client[pgx.Tx], args RetireArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, args.validate, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.Insert(ctx, args, o)
	})
}

// InsertDrain enqueues a drain job, unique by its drain ID: inserting the
// same drain again inserts nothing; the same ID with other arguments is
// refused with ErrMoveIDConflict. The host's workers need a
// Config.Planner for it to run.
func InsertDrain(ctx context.Context, client *river.Client[pgx.Tx], args DrainArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, args.validate, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.Insert(ctx, args, o)
	})
}

// InsertRefill enqueues a refill job, as InsertDrain a drain.
func InsertRefill(ctx context.Context, client *river.Client[pgx.Tx], args RefillArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, args.validate, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.Insert(ctx, args, o)
	})
}

// InsertConvert enqueues a conversion job, unique by its conversion ID.
func InsertConvert(ctx context.Context, client *river.Client[pgx.Tx], args ConvertArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, args.validate, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.Insert(ctx, args, o)
	})
}

// InsertChain enqueues a daisy chain's job, unique by its chain ID. The
// host's workers need a Config.Planner for it to run.
func InsertChain(ctx context.Context, client *river.Client[pgx.Tx], args ChainArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return insert(args, args.validate, opts, func(o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return client.Insert(ctx, args, o)
	})
}

// insert validates args, forces uniqueness by move ID, inserts, and
// refuses a duplicate whose arguments differ.
func insert[T river.JobArgs](args T, validate func() error, opts *river.InsertOpts,
	do func(*river.InsertOpts) (*rivertype.JobInsertResult, error)) (*rivertype.JobInsertResult, error) {
	if err := validate(); err != nil {
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
