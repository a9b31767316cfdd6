package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/eventbus"
	"github.com/daisychain-db/daisychain/replica"
)

// Mover moves tenants. It is safe for concurrent use; moves of different
// tenants may run at once.
type Mover struct {
	cfg    Config
	events eventbus.Bus[EventKind, *Event]
}

// New returns a Mover.
func New(cfg *Config) (*Mover, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Mover{cfg: c}, nil
}

// Request asks for one tenant to move.
type Request struct {
	// ID names the move (and its stream); Resume takes it. Default: the
	// tenant ID and the start time.
	ID string
	// Tenant is the tenant's ID in the catalog.
	Tenant string
	// Target is the ID of the instance to move to. The tenant's database
	// keeps its name there.
	Target string
}

// plan is the move as journaled in StepPlan: with the catalog, all that
// Resume needs. It holds no secrets.
type plan struct {
	Move       string              `json:"move"`
	Tenant     string              `json:"tenant"`
	Database   string              `json:"database"`
	Source     string              `json:"source"`
	Target     string              `json:"target"`
	Verify     replica.VerifyLevel `json:"verify"`
	KeepStream bool                `json:"keep_stream_on_rollback"`
}

// run is one execution of a move, by Move or Resume.
type run struct {
	*stepper
	p      plan
	tenant fleet.Tenant
	src    fleet.Instance
	tgt    fleet.Instance
	stream replica.Stream
	route  tenantRoute

	held []Fence // fences held by this run, in order

	// What a rollback must undo besides the route: a stream may exist.
	streamTouched bool
}

// Move moves a tenant to the target instance: preflight, stream, catch
// up, the window, the switch, and the cleanup after. Before the switch,
// any failure rolls the move back and the source serves; the error then
// wraps ErrRolledBack and the reason, and the report says so. After the
// switch it only goes forward: a failure there leaves the move open in
// the journal, and Resume completes it.
//
// A request is refused, changing nothing, when its ID is already used
// (ErrMoveIDUsed), when another move of the tenant runs
// (ErrMoveInProgress), or when the source or the target is being
// converted (ErrInstanceBusy).
func (m *Mover) Move(ctx context.Context, req Request) (*Report, error) {
	r, err := m.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := m.checkIDUnused(ctx, r.p.Move); err != nil {
		return nil, err
	}
	locks, err := m.lock(ctx, fmt.Sprintf("move %q", r.p.Move), r.wantLocks()...)
	if err != nil {
		return nil, err
	}
	defer locks.Release()
	r.locks, r.first = locks, true
	defer r.close()
	err = r.forward(ctx)
	r.rep.Finished = time.Now()
	return r.rep, err
}

// prepare checks the request against the catalog and routes, changing
// nothing: a bad request is refused before anything is journaled.
func (m *Mover) prepare(ctx context.Context, req Request) (*run, error) {
	fail := func(format string, args ...any) (*run, error) {
		return nil, fmt.Errorf("%w: %s", ErrPreflight, fmt.Sprintf(format, args...))
	}
	if req.Tenant == "" || req.Target == "" {
		return fail("Request needs Tenant and Target")
	}
	tenant, err := m.cfg.Catalog.Locate(ctx, req.Tenant)
	if err != nil {
		return fail("tenant: %v", err)
	}
	if tenant.Instance == req.Target {
		return fail("tenant %q is already on %q", req.Tenant, req.Target)
	}
	src, err := m.cfg.Catalog.Instance(ctx, tenant.Instance)
	if err != nil {
		return fail("source instance of tenant %q: %v", req.Tenant, err)
	}
	tgt, err := m.cfg.Catalog.Instance(ctx, req.Target)
	if err != nil {
		return fail("target: %v", err)
	}
	id := req.ID
	if id == "" {
		id = fmt.Sprintf("%s-%s", req.Tenant, time.Now().UTC().Format("20060102T150405.000"))
	}
	p := plan{Move: id, Tenant: tenant.ID, Database: tenant.Database, Source: src.ID, Target: tgt.ID,
		Verify: m.cfg.Verify, KeepStream: m.cfg.KeepStreamOnRollback}
	return m.newRun(p, tenant, src, tgt), nil
}

// checkIDUnused refuses an ID that a journal already has, before anything
// is locked or journaled (the first append checks again, atomically).
func (m *Mover) checkIDUnused(ctx context.Context, id string) error {
	es, err := m.cfg.Journal.Entries(ctx, id)
	switch {
	case errors.Is(err, ErrMoveNotFound):
		return nil
	case err != nil:
		return err
	}
	return usedError(id, es[len(es)-1])
}

// wantLocks are what a move of the tenant holds: the tenant, and a share of
// its source and target, which no conversion may take meanwhile.
func (r *run) wantLocks() []Lock { return movePlanLocks(r.p) }

func (m *Mover) newRun(p plan, tenant fleet.Tenant, src, tgt fleet.Instance) *run {
	rep := &Report{Move: p.Move, Tenant: p.Tenant, Source: p.Source, Target: p.Target,
		Started: time.Now(), WindowBudget: m.cfg.WindowBudget, Verified: replica.VerifyOff}
	return &run{stepper: &stepper{m: m, move: p.Move, subject: p.Tenant, rep: rep},
		p: p, tenant: tenant, src: src, tgt: tgt,
		route: tenantRoute{tenant: p.Tenant, database: p.Database, move: p.Move}}
}

func (r *run) close() {
	if r.stream != nil {
		_ = r.stream.Close()
	}
}

func (r *run) spec() replica.Spec {
	return replica.Spec{
		ID:             r.p.Move,
		Source:         r.src.Admin,
		SourceDatabase: r.p.Database,
		Target:         r.tgt.Admin,
		TargetDatabase: r.p.Database,
		Options:        replica.Options{Logger: r.m.cfg.Logger},
	}
}

func (r *run) fenceTarget() FenceTarget {
	return FenceTarget{Tenant: r.tenant, Instance: r.src}
}

// stepper journals and reports the steps of one move.
type stepper struct {
	m       *Mover
	move    string
	subject string // the tenant, or the instance being converted
	rep     *Report

	// locks held by this run; checked before the window opens.
	locks HeldLocks
	// first: the next entry begins the journal (its ID must be new).
	first bool

	windowOpen time.Time // zero while no window is open
	// switchAttempted: a switch was published, perhaps with its outcome
	// unknown; a rollback must first find out whether it went through.
	switchAttempted bool
}

// switchStep runs the switch, which publishes the route(s) to the target.
// Once it starts it runs to its end whatever the window's context does
// (bounded on its own): a publish cut off half-way would leave its outcome
// unknown.
func (sp *stepper) switchStep(ctx context.Context, publish func(context.Context) (any, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return sp.step(context.WithoutCancel(ctx), StepSwitch, func(ctx context.Context) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sp.switchAttempted = true
		d, err := publish(ctx)
		if err == nil {
			sp.closeWindow()
		}
		return d, err
	})
}

// checkLocks stops a move whose locks were lost (their session ended)
// before it opens its window: another mover may hold them now.
func (sp *stepper) checkLocks(ctx context.Context) error {
	if sp.locks == nil {
		return nil
	}
	if err := sp.locks.Check(ctx); err != nil {
		return fmt.Errorf("before the window of %q: %w; another mover may hold them now, so this one stops", sp.move, err)
	}
	return nil
}

func (sp *stepper) openWindow() {
	sp.windowOpen = time.Now()
	sp.m.emit(&Event{Kind: EventWindowOpened, Move: sp.move, Tenant: sp.subject})
}

// closeWindow records the window's length in the report, once.
func (sp *stepper) closeWindow() {
	if sp.windowOpen.IsZero() {
		return
	}
	sp.rep.Window = time.Since(sp.windowOpen)
	sp.windowOpen = time.Time{}
	sp.m.emit(&Event{Kind: EventWindowClosed, Move: sp.move, Tenant: sp.subject, Elapsed: sp.rep.Window})
}

// rolledBack ends a move whose rollback worked: the report, the terminal
// journal entry, the event, and cause wrapped in ErrRolledBack.
func (sp *stepper) rolledBack(ctx context.Context, cause error, reason string) error {
	sp.rep.RolledBack, sp.rep.RollbackReason = true, reason
	if err := sp.step(ctx, StepRolledBack, func(context.Context) (any, error) {
		return map[string]string{"reason": reason}, nil
	}); err != nil {
		return errors.Join(cause, err)
	}
	sp.m.emit(&Event{Kind: EventRolledBack, Move: sp.move, Tenant: sp.subject, Err: cause})
	return fmt.Errorf("%w: %w", ErrRolledBack, cause)
}

// rollbackReason says why, for the report and the journal.
func (sp *stepper) rollbackReason(cause error) (string, *StepError) {
	reason := cause.Error()
	var se *StepError
	if errors.As(cause, &se) {
		reason = fmt.Sprintf("%s: %v", se.Step, se.Err)
	}
	if errors.Is(cause, ErrBudgetExceeded) {
		reason = fmt.Sprintf("window budget of %s exceeded at %s", sp.m.cfg.WindowBudget, reason)
	}
	return reason, se
}

// step journals a step as started, runs it, and journals it as finished
// (with the detail fn returns) or failed.
func (sp *stepper) step(ctx context.Context, s Step, fn func(ctx context.Context) (detail any, err error)) error {
	return sp.stepFrom(ctx, s, nil, fn)
}

// stepFrom is step with a detail in the started entry: what Resume must
// know even if the step never finishes.
func (sp *stepper) stepFrom(ctx context.Context, s Step, startDetail any, fn func(ctx context.Context) (detail any, err error)) error {
	log := sp.m.cfg.Logger.With("move", sp.move, "subject", sp.subject, "step", s)
	if err := sp.journal(ctx, s, StatusStarted, startDetail); err != nil {
		return &StepError{Move: sp.move, Step: s, Err: err}
	}
	sp.m.emit(&Event{Kind: EventStepStarted, Move: sp.move, Tenant: sp.subject, Step: s})
	log.Debug("cutover: step started")
	start := time.Now()
	var detail any
	var err error
	if hook := sp.m.cfg.BeforeStep; hook != nil {
		err = hook(ctx, sp.move, s)
	}
	if err == nil {
		detail, err = fn(ctx)
	}
	elapsed := time.Since(start)
	timing := StepTiming{Step: s, Duration: elapsed}
	status := StatusFinished
	if err != nil {
		timing.Err, status, detail = err.Error(), StatusFailed, map[string]string{"error": err.Error()}
	}
	sp.rep.Steps = append(sp.rep.Steps, timing)
	sp.m.emit(&Event{Kind: EventStepFinished, Move: sp.move, Tenant: sp.subject, Step: s, Elapsed: elapsed, Err: err})
	// The outcome is journaled even when ctx ended, or Resume would not
	// know it.
	if jerr := sp.journal(context.WithoutCancel(ctx), s, status, detail); jerr != nil {
		err = errors.Join(err, jerr)
	}
	if err != nil {
		log.Info("cutover: step failed", "elapsed", elapsed, "error", err)
		return &StepError{Move: sp.move, Step: s, Err: err}
	}
	log.Info("cutover: step finished", "elapsed", elapsed)
	return nil
}

func (sp *stepper) journal(ctx context.Context, s Step, status Status, detail any) error {
	var raw json.RawMessage
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return fmt.Errorf("journal detail of %s: %w", s, err)
		}
		raw = b
	}
	e := Entry{Move: sp.move, Kind: KindMove, Step: s, Status: status, Detail: raw}
	if sp.first {
		e.Seq = 1
	}
	if _, err := sp.m.cfg.Journal.Append(ctx, e); err != nil {
		return err
	}
	sp.first = false
	return nil
}

// publish makes the tenant's route point at inst with the next epoch.
func (r *run) publish(ctx context.Context, inst fleet.Instance, paused bool) (epochDetail, error) {
	return r.m.publishRoute(ctx, &r.route, inst, paused)
}
