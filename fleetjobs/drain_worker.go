package fleetjobs

import (
	"cmp"
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/daisychain-db/daisychain/drain"
)

// drainWorker runs DrainArgs jobs, a round at a time (see fanOut.run).
type drainWorker struct {
	river.WorkerDefaults[DrainArgs]
	cfg Config
}

// Timeout bounds one round; the moves are jobs of their own.
func (w *drainWorker) Timeout(*river.Job[DrainArgs]) time.Duration { return w.cfg.FanOutTimeout }

// Work plans the drain once, then enqueues and watches its moves.
func (w *drainWorker) Work(ctx context.Context, job *river.Job[DrainArgs]) error {
	a := job.Args
	if err := a.validate(); err != nil {
		return river.JobCancel(err)
	}
	f := &fanOut{cfg: &w.cfg, job: job.JobRow, id: a.DrainID, inFlight: cmp.Or(a.InFlight, InFlightDefault), keepSources: a.KeepSources,
		plan: func(ctx context.Context) (*drain.Plan, error) {
			return w.cfg.Planner.DryRun(ctx, a.Instance, a.Threshold, &drain.DrainOpts{Exclude: a.Exclude, MaxMoves: a.MaxMoves})
		}}
	return f.run(ctx)
}

// refillWorker runs RefillArgs jobs as drainWorker runs drains.
type refillWorker struct {
	river.WorkerDefaults[RefillArgs]
	cfg Config
}

// Timeout bounds one round; the moves are jobs of their own.
func (w *refillWorker) Timeout(*river.Job[RefillArgs]) time.Duration { return w.cfg.FanOutTimeout }

// Work plans the refill once, then enqueues and watches its moves.
func (w *refillWorker) Work(ctx context.Context, job *river.Job[RefillArgs]) error {
	a := job.Args
	if err := a.validate(); err != nil {
		return river.JobCancel(err)
	}
	f := &fanOut{cfg: &w.cfg, job: job.JobRow, id: a.RefillID, inFlight: cmp.Or(a.InFlight, InFlightDefault), keepSources: a.KeepSources,
		plan: func(ctx context.Context) (*drain.Plan, error) {
			return w.cfg.Planner.DryRunRefill(ctx, a.Instance, a.Sources, a.Level, &drain.RefillOpts{MaxMoves: a.MaxMoves})
		}}
	return f.run(ctx)
}
