package cutover

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
	"unicode/utf8"

	"github.com/daisychain-db/daisychain/replica"
)

// kindRehearsal marks a rehearsal's plan.
const kindRehearsal = "rehearsal"

// StepRehearsed is a rehearsal's terminal step: what it made is dropped,
// what it measured recorded.
const StepRehearsed Step = "rehearsed"

// RehearseRequest asks for a rehearsal of a tenant's move.
type RehearseRequest struct {
	// Tenant and Target as in a Request.
	Tenant, Target string
	// ID names the rehearsal's journal; default "<tenant>-rehearsal-<UTC
	// time>".
	ID string
}

// Rehearse runs a tenant's move against a scratch database on the
// target, and changes nothing else: the stream copies the tenant into a
// database named by RehearsalDatabase, catches up, and runs a window that
// fences nothing and switches nothing (barrier, wait for the target,
// sequences, snapshot), then verifies the snapshot against the source
// still taking writes (its result is timed, not judged: nothing was
// fenced). Every step is timed, then the scratch database and the
// stream's publication, slot and subscription are dropped, and the
// measurement is recorded for the RateModel (if the Journal is a
// MeasurementStore) and returned in Report.Measurement.
//
// It holds the locks a move holds (the tenant's, a move slot out of the
// source and one into the target), so it waits for, and holds off, a
// move of the tenant. The application keeps its route; the only load on
// the source is a move's: the copy, and the slot's WAL until the end. A
// rehearsal that fails or is cut off drops what it made (Resume drops
// it after a crash) and returns an error wrapping ErrRolledBack.
func (m *Mover) Rehearse(ctx context.Context, req RehearseRequest) (*Report, error) {
	if req.ID == "" && req.Tenant != "" {
		req.ID = fmt.Sprintf("%s-rehearsal-%s", req.Tenant, time.Now().UTC().Format("20060102T150405.000"))
	}
	r, err := m.prepare(ctx, Request{Tenant: req.Tenant, Target: req.Target, ID: req.ID, NoReverse: true})
	if err != nil {
		return nil, err
	}
	p := r.p
	p.Kind, p.TargetDatabase, p.KeepStream, p.Reverse = kindRehearsal, RehearsalDatabase(p.Database), false, false
	return m.runNew(ctx, m.newRun(p, r.tenants, r.src, r.tgt))
}

// RehearsalDatabase is the scratch database a rehearsal of database
// copies into on the target: "rehearsal_" and the name, shortened with a
// hash to fit PostgreSQL's 63 bytes.
func RehearsalDatabase(database string) string {
	name := "rehearsal_" + database
	if len(name) <= 63 {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(database))
	cut := 63 - 9
	for cut > 0 && !utf8.RuneStart(name[cut]) { // a name is cut between characters
		cut--
	}
	return fmt.Sprintf("%s_%08x", name[:cut], h.Sum32())
}

func (p plan) rehearsal() bool { return p.Kind == kindRehearsal }

// rehearsalTable is a rehearsal's steps: a move's before its window; a
// window of the steps that fence and switch nothing; the verification;
// then the end.
func (r *run) rehearsalTable() (before, window, after []stepDef) {
	c := r.copy.(*streamCopy)
	before = []stepDef{
		{step: StepPlan, run: func(context.Context) (any, error) { return r.p, nil }},
		{step: StepPreflight, run: r.preflight},
		{step: StepStream, run: r.start},
		{step: StepCatchUp, run: r.catchUp},
	}
	window = []stepDef{
		{step: StepBarrier, journal: journalFailure, run: r.barrier},
		{step: StepWaitTarget, journal: journalFailure, run: r.waitTarget},
	}
	window = append(window, c.leveled()...)
	after = []stepDef{
		{step: StepVerify, run: c.rehearseVerify},
		{step: StepRehearsed, run: r.rehearsed},
	}
	return before, window, after
}

// rehearse is a rehearsal's run: forward's, with a window that holds
// nothing, and an end that drops what it made.
func (r *run) rehearse(ctx context.Context) error {
	before, window, after := r.rehearsalTable()
	if err := r.before(ctx, before); err != nil {
		return err
	}
	if err := r.rehearsalWindow(ctx, window); err != nil {
		return r.rollback(ctx, err)
	}
	for _, s := range after {
		if err := r.do(ctx, s); err != nil {
			return r.rollback(ctx, err)
		}
	}
	return nil
}

// rehearsalWindow runs the window's steps under the budget, as a move
// would, timing them as the report's Window; it opens no window (no
// event: nothing waits).
func (r *run) rehearsalWindow(ctx context.Context, steps []stepDef) error {
	if err := r.admin.open(ctx, r.src, r.databases()); err != nil {
		return fmt.Errorf("before the window: %w", err)
	}
	r.measureBeforeWindow(ctx)
	if err := r.copy.ready(ctx); err != nil {
		return fmt.Errorf("before the window: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, r.m.cfg.WindowBudget)
	defer cancel()
	began := time.Now()
	err := r.windowSteps(wctx, steps)
	r.rep.Window = time.Since(began)
	if err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%w (%s): a move of this tenant would roll back: %w", ErrBudgetExceeded, r.m.cfg.WindowBudget, err)
	}
	return err
}

// rehearseVerify times the verification of the target's snapshot; a
// mismatch is what an unfenced source gives, so it is noted, not
// reported.
func (c *streamCopy) rehearseVerify(ctx context.Context) (any, error) {
	level := c.r.p.Verify
	ts, ok := c.stream.(TargetSnapshotter)
	if level == replica.VerifyOff || !ok || c.snapshot == "" {
		return nil, nil
	}
	err := ts.VerifySnapshot(ctx, c.snapshot, level)
	switch {
	case err == nil:
		return map[string]string{"verified": level.String()}, nil
	case errors.Is(err, replica.ErrVerifyMismatch):
		return map[string]string{"verified": level.String(), "mismatch": "expected: the source took writes, unfenced"}, nil
	}
	return nil, err
}

// rehearsed drops what the rehearsal made (the stream aborted drops the
// scratch database too), then records what it measured.
func (r *run) rehearsed(ctx context.Context) (any, error) {
	if err := r.copy.(*streamCopy).abort(ctx); err != nil {
		return nil, fmt.Errorf("drop what the rehearsal made: %w", err)
	}
	r.recordMeasurement(ctx, MeasuredRehearsal)
	return map[string]string{"dropped": r.p.TargetDatabase}, nil
}
