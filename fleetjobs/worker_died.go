package fleetjobs

import (
	"context"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// workerDied says whether the running job of a move or a conversion (its
// latest job: its own, or its latest takeover) lost its worker, so that
// the drain or the chain that waits on it gives the work to another job
// at once rather than wait for River to rescue the job after MoveTimeout
// (with the tenants paused and fenced, if the worker died in a window).
//
// A worker died if its move is planned and open and no mover holds the
// move's locks (cutover's Abandoned). Its journal cannot tell if the move
// is not planned yet (a live mover journals its plan within its LockWait)
// or done and not yet settled (retired, or the job's output recorded):
// the worker is then taken for dead once the job, or the done step, is
// older than TakeoverAfter. A wrong guess costs only a second job: the
// tenants' locks and the journal keep the two apart.
func workerDied(ctx context.Context, cfg *Config, moveID string, job *rivertype.JobRow, jm journaledMove) (bool, error) {
	since := time.Time{}
	switch {
	case jm.state == moveRolledBack:
		return false, nil // over: the job ends by itself
	case jm.state == moveOpen && jm.planned != nil:
		return cfg.Mover.Abandoned(ctx, moveID)
	case jm.state == moveDone:
		since = jm.last.At
	case job.AttemptedAt != nil:
		since = *job.AttemptedAt
	}
	return !since.IsZero() && time.Since(since) >= cfg.TakeoverAfter, nil
}
