package fleetjobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
)

// Decision says what a job did, as its recorded output (river_job.output)
// and its log line say.
type Decision string

const (
	// DecisionMoved: the job started the move (the journal had no entry
	// of its ID).
	DecisionMoved Decision = "moved"
	// DecisionResumed: the journal had the move open (its worker died, or
	// an attempt failed after its switch), and the job resumed it.
	DecisionResumed Decision = "resumed"
	// DecisionAlreadyDone: the journal had the move done; the job changed
	// nothing.
	DecisionAlreadyDone Decision = "already_done"
	// DecisionRetired: the job retired the move (or found it retired).
	DecisionRetired Decision = "retired"
)

// Output is what a job records as its output when it succeeds.
type Output struct {
	Decision Decision `json:"decision"`
	// Report is the move's report (nil when the job changed nothing).
	Report *cutover.Report `json:"report,omitempty"`
}

// moveWorker runs MoveArgs jobs.
type moveWorker struct {
	river.WorkerDefaults[MoveArgs]
	cfg Config
}

// Timeout overrides the client's JobTimeout: see Config.MoveTimeout.
func (w *moveWorker) Timeout(*river.Job[MoveArgs]) time.Duration { return w.cfg.MoveTimeout }

// Work does what the journal says is left of the move: start it, resume
// it, or nothing. Whatever killed an earlier attempt, the journal is how
// far the move got, so any attempt on any worker continues from there.
func (w *moveWorker) Work(ctx context.Context, job *river.Job[MoveArgs]) error {
	return w.move(ctx, job.JobRow, job.Args)
}

// takeoverWorker runs TakeoverArgs jobs: a move job's work, under a kind
// of its own so that it can be enqueued while the move's own job is still
// held by a dead worker.
type takeoverWorker struct {
	river.WorkerDefaults[TakeoverArgs]
	mw moveWorker
}

// Timeout is a move job's: see Config.MoveTimeout.
func (w *takeoverWorker) Timeout(*river.Job[TakeoverArgs]) time.Duration { return w.mw.cfg.MoveTimeout }

// Work does what the journal says is left of the move, as a move job does.
func (w *takeoverWorker) Work(ctx context.Context, job *river.Job[TakeoverArgs]) error {
	return w.mw.move(ctx, job.JobRow, job.Args.moveArgs())
}

// move is the work of a move job, and of the job that takes one over.
func (w *moveWorker) move(ctx context.Context, job *rivertype.JobRow, a MoveArgs) error {
	meta := metaOf(job)
	defer wakeParent(ctx, w.cfg.Logger, meta)
	if err := a.validate(); err != nil {
		return river.JobCancel(err)
	}
	state, planned, err := journalState(ctx, w.cfg.Journal, a.MoveID)
	if err == nil {
		err = checkPlanned(planned, a.MoveID, a)
	}
	if err != nil {
		return w.settle(err)
	}
	decision, rep, err := byJournal(ctx, w.cfg.Mover, a.MoveID, state, func() (*cutover.Report, error) {
		// A drain's move retired at once needs no reverse stream.
		return w.cfg.Mover.Move(ctx, cutover.Request{ID: a.MoveID, Tenant: a.Tenant, Target: a.Target, NoReverse: meta.Retire})
	})
	if err == nil && meta.Retire {
		// A drain's move frees its source at once, as drain.Runner's
		// does; a retire cut off is done again by the next attempt.
		if err = w.cfg.Mover.Retire(ctx, a.MoveID); err != nil {
			err = fmt.Errorf("moved, but the source copy was not retired: %w", err)
		}
	}
	if err != nil {
		w.cfg.Logger.InfoContext(ctx, "fleetjobs: move job did not finish", "job", job.ID, "move", a.MoveID,
			"tenant", a.Tenant, "journal", state.String(), "attempt", job.Attempt, "err", err)
		return w.settle(err)
	}
	w.cfg.Logger.InfoContext(ctx, "fleetjobs: move job finished", "job", job.ID, "move", a.MoveID,
		"tenant", a.Tenant, "target", a.Target, "decision", string(decision))
	return river.RecordOutput(ctx, Output{Decision: decision, Report: rep})
}

// settle turns a move's error into what River does with the job:
//   - another mover holds the tenant, or an instance is being converted:
//     snooze (no attempt used up); the advisory lock, not River, keeps
//     two movers of one tenant apart;
//   - the move rolled back, was refused by preflight, or the ID names no
//     move or another one: cancel, since running it again changes nothing;
//   - anything else: fail the attempt; River retries it, and the next
//     attempt resumes from the journal.
func (w *moveWorker) settle(err error) error {
	return settle(err, w.cfg.BusySnooze)
}

func settle(err error, busySnooze time.Duration) error {
	switch {
	case errors.Is(err, cutover.ErrMoveInProgress), errors.Is(err, cutover.ErrInstanceBusy):
		return river.JobSnooze(busySnooze)
	case errors.Is(err, cutover.ErrRolledBack), errors.Is(err, cutover.ErrPreflight),
		errors.Is(err, cutover.ErrNotAMove), errors.Is(err, cutover.ErrMoveNotFound),
		errors.Is(err, cutover.ErrNotRetirable), errors.Is(err, ErrMoveIDConflict):
		return river.JobCancel(err)
	default:
		return err
	}
}
