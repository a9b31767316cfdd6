package cutover

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// measuring is what a run measures as it goes, for its Measurement and
// its events' ETA. Only a run that starts at its first step measures: a
// resumed one knows only part of its time.
type measuring struct {
	on    bool
	shape shapeReading
	// changes counter of the database read before the window opened.
	changes   int64
	changesAt time.Time
	// phases and rows the stream reported last in the catch-up.
	phases []replica.PhaseTiming
	rows   int64
}

// measureStart reads the shape of what the run moves and estimates the
// run from the rate model; the preflight step calls it once its checks
// passed. A failure only leaves the run without an estimate: it is
// logged, and the run goes on.
func (r *run) measureStart(ctx context.Context) {
	if r.p.revert() {
		return // a revert copies nothing: nothing to model
	}
	shape, err := r.readShape(ctx, 0)
	if err != nil {
		r.m.cfg.Logger.Warn("cutover: the run goes on without a measurement", "move", r.p.Move, "error", err)
		return
	}
	r.meas.on, r.meas.shape = true, shape
	model, err := r.m.RateModel(ctx, r.p.source(), r.p.destination(), r.p.convert())
	if err != nil {
		r.m.cfg.Logger.Warn("cutover: the run goes on without an estimate", "move", r.p.Move, "error", err)
		return
	}
	r.est = r.estimate(model, shape.Shape)
	r.rep.Estimate = r.est
	r.m.cfg.Logger.Info("cutover: estimate", "move", r.p.Move, "total", r.est.Total, "low", r.est.Low, "high", r.est.High,
		"window", r.est.Window, "basis", r.est.Basis.String())
}

// readShape: a move's tenant database; a conversion's instance (its
// bytes, over one admin session whatever the tenants).
func (r *run) readShape(ctx context.Context, sample time.Duration) (shapeReading, error) {
	if !r.p.convert() {
		return readShape(ctx, r.src, r.p.Database, sample)
	}
	conn, err := connectAdmin(ctx, r.src)
	if err != nil {
		return shapeReading{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var s shapeReading
	err = conn.QueryRow(ctx, "SELECT sum(pg_database_size(oid))::int8 FROM pg_database").Scan(&s.Bytes)
	return s, err
}

// estimate is the model's estimate of this run's table.
func (r *run) estimate(model *RateModel, shape Shape) *Estimate {
	before, window, after := r.table()
	return model.Estimate(Subject{Shape: shape, Tenants: len(r.tenants), Verify: r.p.Verify, Convert: r.p.convert()},
		stepsOf(before), stepsOf(window), stepsOf(after))
}

func stepsOf(defs []stepDef) []Step {
	out := make([]Step, len(defs))
	for i, d := range defs {
		out[i] = d.step
	}
	return out
}

// measureBeforeWindow reads the database's changes counter over the
// admin session the window opened, for the write rate of the run.
func (r *run) measureBeforeWindow(ctx context.Context) {
	if !r.meas.on || r.p.convert() {
		return
	}
	_ = r.admin.do(ctx, r.src, r.databases(), func(c *pgx.Conn) error {
		n, at, err := readChanges(ctx, c, r.p.Database)
		if err == nil {
			r.meas.changes, r.meas.changesAt = n, at
		}
		return err
	})
}

// measurement is what the run measured, once it ended.
func (r *run) measurement(kind string) Measurement {
	rep := r.rep
	m := Measurement{Move: r.p.Move, Kind: kind, Tenant: r.p.Tenant, Source: r.p.source(), Target: r.p.destination(),
		At: time.Now(), Shape: r.meas.shape.Shape, Tenants: len(r.tenants), Steps: rep.Steps,
		Phases: r.meas.phases, BytesCopied: rep.BytesCopied, RowsCopied: r.meas.rows, Window: rep.Window,
		Total: time.Since(rep.Started), Verify: r.p.Verify}
	if kind == MeasuredConvert {
		m.Tenant = ""
	}
	if !r.meas.changesAt.IsZero() {
		m.ChangesPerSecond = changesPerSecond(r.meas.shape.changes, r.meas.shape.at, r.meas.changes, r.meas.changesAt)
	}
	if len(m.Phases) > 0 {
		m.CatchUpTail = max(m.Step(StepCatchUp)-m.Phase(replica.PhaseCopy)-m.Phase(replica.PhaseIndexes), 0)
	}
	return m
}

// recordMeasurement keeps what the run measured in the journal, if it
// keeps measurements. A failure is logged: the run itself is done.
func (r *run) recordMeasurement(ctx context.Context, kind string) {
	if !r.meas.on {
		return
	}
	m := r.measurement(kind)
	r.rep.Measurement = &m
	store, ok := r.m.cfg.Journal.(MeasurementStore)
	if !ok {
		return
	}
	if err := store.RecordMeasurement(context.WithoutCancel(ctx), m); err != nil {
		r.m.cfg.Logger.Warn("cutover: the run's measurement was not recorded", "move", r.p.Move, "error", err)
	}
}

// eta is the run's estimated time left at step s, inStep into it, at
// least atLeast for the step; 0 without an estimate.
func (sp *stepper) eta(s Step, inStep, atLeast time.Duration) time.Duration {
	if sp.est == nil {
		return 0
	}
	return sp.est.Remaining(s, inStep, atLeast)
}
