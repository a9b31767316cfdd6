package fleetjobs

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/daisychain-db/daisychain/cutover"
)

// retireWorker runs RetireArgs jobs.
type retireWorker struct {
	river.WorkerDefaults[RetireArgs]
	cfg Config
}

// Timeout overrides the client's JobTimeout: see Config.RetireTimeout.
func (w *retireWorker) Timeout(*river.Job[RetireArgs]) time.Duration { return w.cfg.RetireTimeout }

// Work retires the move; Retire is idempotent, so a retried or duplicated
// job does nothing more. A move that is still open (its move job has not
// finished) is waited for, not refused.
func (w *retireWorker) Work(ctx context.Context, job *river.Job[RetireArgs]) error {
	a := job.Args
	if err := a.validate(); err != nil {
		return river.JobCancel(err)
	}
	err := w.cfg.Mover.Retire(ctx, a.MoveID)
	if errors.Is(err, cutover.ErrNotRetirable) {
		if state, _, serr := journalState(ctx, w.cfg.Journal, a.MoveID); serr == nil && state == moveOpen {
			return river.JobSnooze(w.cfg.BusySnooze)
		}
	}
	if err != nil {
		w.cfg.Logger.InfoContext(ctx, "fleetjobs: retire job did not finish", "job", job.ID, "move", a.MoveID,
			"attempt", job.Attempt, "err", err)
		return settle(err, w.cfg.BusySnooze)
	}
	w.cfg.Logger.InfoContext(ctx, "fleetjobs: retire job finished", "job", job.ID, "move", a.MoveID)
	return river.RecordOutput(ctx, Output{Decision: DecisionRetired})
}
