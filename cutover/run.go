package cutover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// run is one execution of a window over a set of tenants: a Move (a set
// of one), a Convert (every tenant of an instance), or their Resume. The
// steps are the same for both; what copies the data differs (copier).
type run struct {
	*stepper
	p       plan
	tenants []fleet.Tenant
	src     fleet.Instance
	// tgt is where the routes switch to: a move's target; a conversion's
	// new instance once registered.
	tgt    fleet.Instance
	routes []tenantRoute // one per tenant, in the same order
	copy   copier
	follow follower // the started copy; nil before
	// admin holds the sessions to the instances the window touches.
	admin *adminSessions
	held  []Fence // fences that may be up, in the order they went up

	barrierPos replica.Position
	meas       measuring
}

func (m *Mover) newRun(p plan, tenants []fleet.Tenant, src, tgt fleet.Instance) *run {
	rep := &Report{Move: p.Move, Kind: "move", Tenant: p.Tenant, Tenants: len(tenants), Source: p.source(),
		Target: p.destination(), Started: time.Now(), WindowBudget: m.cfg.WindowBudget, Verified: replica.VerifyOff}
	switch {
	case p.convert():
		rep.Kind, rep.Tenant = kindConvert, fmt.Sprintf("%d tenants", len(tenants))
	case p.revert():
		rep.Kind, rep.Reverts = kindRevert, p.Reverts
	case p.rehearsal():
		rep.Kind = kindRehearsal
	}
	r := &run{stepper: &stepper{m: m, move: p.Move, subject: p.subject(), rep: rep},
		p: p, tenants: tenants, src: src, tgt: tgt, admin: &adminSessions{}}
	r.routes = make([]tenantRoute, len(tenants))
	for i, t := range tenants {
		r.routes[i] = tenantRoute{tenant: t.ID, database: t.Database, move: p.Move}
	}
	switch {
	case p.convert():
		r.copy = &replicaCopy{r: r}
	case p.revert():
		r.copy = &reverseCopy{streamCopy: streamCopy{r: r}}
	default:
		r.copy = &streamCopy{r: r}
	}
	return r
}

// table is the run's steps, in order: before the window, inside it (up
// to the switch), and after. DryRun lists it; forward runs it.
func (r *run) table() (before, window, after []stepDef) {
	if r.p.rehearsal() {
		return r.rehearsalTable()
	}
	before = []stepDef{
		{step: StepPlan, run: func(context.Context) (any, error) { return r.p, nil }},
		{step: StepPreflight, run: r.preflight},
		{step: r.copy.startStep(), run: r.start},
		{step: StepCatchUp, run: r.catchUp},
	}
	if sc, ok := r.copy.(*streamCopy); ok && r.p.Reverse {
		before = append(before, stepDef{step: StepReversePrepare, run: sc.prepareReverse})
	}
	if !r.m.cfg.NoRoutePause {
		window = append(window, stepDef{step: StepPause, journal: journalStart, startDetail: r.pauseRecord, run: r.pause})
	}
	window = append(window,
		stepDef{step: StepQuiesce, journal: journalFailure, run: r.quiesce},
		stepDef{step: StepFence, journal: journalStart, startDetail: r.fenceRecords, run: r.fence},
		stepDef{step: StepBarrier, journal: journalFailure, run: r.barrier},
		stepDef{step: StepWaitTarget, journal: journalFailure, run: r.waitTarget})
	window = append(window, r.copy.leveled()...)
	window = append(window, stepDef{step: StepSwitch, startDetail: r.switchRecord, run: r.switchRoutes})
	after = append([]stepDef{{step: StepCatalog, run: r.recordInCatalog}}, r.copy.finished()...)
	after = append(after, stepDef{step: StepDone, run: func(ctx context.Context) (any, error) {
		kind := MeasuredMove
		if r.p.convert() {
			kind = MeasuredConvert
		}
		r.recordMeasurement(ctx, kind)
		return nil, nil
	}})
	return before, window, after
}

// forward is the run, one step after the other. Before the switch, any
// failure rolls it back; after, it only goes forward.
func (r *run) forward(ctx context.Context) error {
	before, window, after := r.table()
	if err := r.before(ctx, before); err != nil {
		return err
	}
	if err := r.window(ctx, window); err != nil {
		return r.rollback(ctx, err)
	}
	return r.afterSwitch(ctx, after, nil)
}

// before runs the steps before the window; a failure rolls the run
// back.
func (r *run) before(ctx context.Context, steps []stepDef) error {
	for _, s := range steps {
		if err := r.do(ctx, s); err != nil {
			if s.step == StepPlan && errors.Is(err, ErrMoveIDUsed) {
				return err // someone else's journal: nothing of ours to undo
			}
			return r.rollback(ctx, err)
		}
	}
	return nil
}

// window holds writes, brings the destination level with the source, and
// switches the routes, within the budget. What it needs is opened and
// checked before it opens: the admin sessions and the copy's readiness.
func (r *run) window(ctx context.Context, steps []stepDef) error {
	if err := r.admin.open(ctx, r.src, r.databases()); err != nil {
		return fmt.Errorf("before the window: %w", err)
	}
	r.measureBeforeWindow(ctx)
	if err := r.prepareFences(ctx); err != nil {
		return fmt.Errorf("before the window: %w", err)
	}
	if err := r.copy.ready(ctx); err != nil {
		return fmt.Errorf("before the window: %w", err)
	}
	// Last before the window: the locks are still ours.
	if err := r.checkLocks(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, r.m.cfg.WindowBudget)
	defer cancel()
	r.openWindow()
	err := r.windowSteps(wctx, steps)
	if err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%w (%s): %w", ErrBudgetExceeded, r.m.cfg.WindowBudget, err)
	}
	return err
}

func (r *run) windowSteps(ctx context.Context, steps []stepDef) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return &StepError{Move: r.p.Move, Step: s.step, Err: err}
		}
		var err error
		if s.step == StepSwitch {
			err = r.switchStep(ctx, s)
		} else {
			err = r.do(ctx, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// afterSwitch records the switch and finishes: the steps of after that
// did not finish already (seen, from a journal). It only goes forward:
// the routes already send the tenants to the destination.
func (r *run) afterSwitch(ctx context.Context, after []stepDef, seen map[Step]Status) error {
	if after == nil {
		_, _, after = r.table()
	}
	for _, s := range after {
		if seen[s.step] == StatusFinished && s.step != StepDone {
			continue
		}
		if err := r.do(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) close(ctx context.Context) {
	r.copy.close()
	r.admin.close(ctx)
}

// databases are the tenants' database names.
func (r *run) databases() []string {
	dbs := make([]string, len(r.tenants))
	for i, t := range r.tenants {
		dbs[i] = t.Database
	}
	return dbs
}

// routeRefs points at the routes keep selects (all of them if nil).
func (r *run) routeRefs(keep func(*tenantRoute) bool) []*tenantRoute {
	var out []*tenantRoute
	for i := range r.routes {
		if keep == nil || keep(&r.routes[i]) {
			out = append(out, &r.routes[i])
		}
	}
	return out
}

func (r *run) start(ctx context.Context) (any, error) {
	f, err := r.copy.start(ctx)
	if err != nil {
		return nil, err
	}
	r.follow = f
	return nil, nil
}

// catchUp waits until the copy is done and the lag is under CatchUpLag,
// reporting progress about once a second.
func (r *run) catchUp(parent context.Context) (any, error) {
	ctx, cancel := context.WithTimeout(parent, r.m.cfg.CatchUpTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	// stopped says why the catch-up ends early: the caller's cancellation
	// is reported as such, the CatchUpTimeout as ErrCatchUpTimeout (a
	// query cut off by the deadline may return before ctx says so).
	stopped := func(p replica.Progress, err error) error {
		if perr := parent.Err(); perr != nil {
			return fmt.Errorf("catch-up stopped: %w", perr)
		}
		if ctx.Err() == nil && time.Now().Before(deadline) {
			return err
		}
		tables := ""
		if p.TablesTotal > 0 {
			tables = fmt.Sprintf(", %d of %d tables copied", p.TablesDone, p.TablesTotal)
		}
		blockers := ""
		for i, b := range p.Blockers {
			if i == 0 {
				blockers = "; waiting on "
			} else {
				blockers += ", "
			}
			blockers += b.String()
		}
		if err != nil {
			return fmt.Errorf("%w after %s (phase %s%s, lag %d bytes%s): %w",
				ErrCatchUpTimeout, r.m.cfg.CatchUpTimeout, p.Phase, tables, p.LagBytes, blockers, err)
		}
		return fmt.Errorf("%w after %s (phase %s%s, %d bytes copied, lag %d bytes%s)",
			ErrCatchUpTimeout, r.m.cfg.CatchUpTimeout, p.Phase, tables, p.BytesCopied, p.LagBytes, blockers)
	}
	var lastEvent time.Time
	var last replica.Progress
	began := time.Now()
	for {
		p, err := r.follow.Progress(ctx)
		if err == nil && p.Err != nil {
			err = p.Err
		}
		if err != nil {
			return nil, stopped(last, err)
		}
		last = p
		if !r.p.revert() { // a revert copies nothing
			r.rep.BytesCopied = p.BytesCopied
			r.meas.phases, r.meas.rows = p.Phases, max(r.meas.rows, p.RowsCopied)
		}
		if time.Since(lastEvent) >= time.Second {
			lastEvent = time.Now()
			r.m.emit(&Event{Kind: EventProgress, Move: r.p.Move, Tenant: r.subject, Step: StepCatchUp, Progress: &p,
				ETA: r.eta(StepCatchUp, time.Since(began), p.CopyETA+p.CatchUpETA)})
		}
		if p.Phase == replica.PhaseStreaming && p.LagBytes <= r.m.cfg.CatchUpLag {
			return map[string]int64{"lag_bytes": p.LagBytes, "bytes_copied": p.BytesCopied}, nil
		}
		select {
		case <-ctx.Done():
			return nil, stopped(p, nil)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// recordInCatalog assigns every tenant to the destination, several at a
// time; a tenant an earlier run of this move assigned already is done.
func (r *run) recordInCatalog(ctx context.Context) (any, error) {
	dest := r.p.destination()
	err := inParallel(ctx, len(r.tenants), parallelDefault, func(ctx context.Context, i int) error {
		t := r.tenants[i]
		err := r.m.cfg.Catalog.Assign(ctx, t.ID, dest, &fleet.AssignOpts{From: r.p.source()})
		if errors.Is(err, fleet.ErrAssignConflict) {
			if cur, lerr := r.m.cfg.Catalog.Locate(ctx, t.ID); lerr == nil && cur.Instance == dest {
				return nil
			}
		}
		return err
	})
	return map[string]int{"tenants": len(r.tenants)}, err
}
