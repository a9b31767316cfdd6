package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/eventbus"
)

// ErrMovesFailed: some moves of a drain or refill failed (each was rolled
// back or left for Resume); Result.Failed says which and why.
var ErrMovesFailed = errors.New("drain: moves failed")

// Config configures a Runner. Catalog and Mover are required.
type Config struct {
	// Catalog is measured for the snapshot the plans start from.
	Catalog fleet.Catalog
	// Mover runs each move.
	Mover *cutover.Mover
	// Journal is the Mover's journal; Chain records its stages in it.
	// Required by Chain and ResumeChain only.
	Journal cutover.Journal
	// Concurrency is how many moves run at once. Default
	// ConcurrencyDefault.
	Concurrency int
	// KeepSources keeps each moved tenant's source copy, fenced, for the
	// rollback period (cutover.Mover.Retire ends it). Default false: a
	// drain exists to free its instance, so each copy is retired as soon
	// as its move is done, and its move makes no reverse stream
	// (cutover.Request.NoReverse: no Revert of a retired move, and no
	// reverse slot made in its window). With KeepSources, the after-drain threshold
	// is checked without the kept copies (each is freed at Retire), while
	// Result.After still counts them as what is on disk.
	KeepSources bool
	// Measure is passed to Measure, with Instances set to those each
	// plan involves (so Measure.Instances must be nil). Default:
	// activity not sampled (a drain orders by size first), which keeps
	// measuring fast.
	Measure *MeasureOpts
	// Logger receives each move's outcome. Default: discarded.
	Logger *slog.Logger
}

// Runner runs drains and refills: it measures the fleet, plans, and moves
// the tenants with cutover, several at a time.
type Runner struct {
	cfg    Config
	events eventbus.Bus[EventKind, *Event]
}

// New returns a Runner.
func New(cfg *Config) (*Runner, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: drain.New needs a Config with Catalog and Mover", ErrInvalid)
	}
	c := *cfg
	var errs []error
	if c.Catalog == nil {
		errs = append(errs, errors.New("Catalog is nil: set the fleet.Catalog to measure"))
	}
	if c.Mover == nil {
		errs = append(errs, errors.New("Mover is nil: set the *cutover.Mover that runs the moves"))
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("Concurrency is %d: it must not be negative (0 means %d)", c.Concurrency, ConcurrencyDefault))
	}
	if c.Measure != nil && c.Measure.Instances != nil {
		errs = append(errs, errors.New("Measure.Instances is set: a Runner measures the instances each plan involves, so leave it nil (DrainOpts.Exclude keeps tenants off instances)"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: drain.New: %w", ErrInvalid, errors.Join(errs...))
	}
	if c.Concurrency == 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.Measure == nil {
		c.Measure = &MeasureOpts{Interval: -1}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: c}, nil
}

// EventKind says what an Event reports.
type EventKind string

// Kinds of events.
const (
	EventMoveStarted  EventKind = "move_started"  // a tenant's move began
	EventMoveFinished EventKind = "move_finished" // a tenant's move ended; Err is set if it failed
	EventProgress     EventKind = "progress"      // as the moves start, then after each: counts and the ETA
)

// Event is something that happened in a drain or refill.
type Event struct {
	Kind EventKind
	// Move is the move concerned (EventMoveStarted, EventMoveFinished).
	Move Move
	// Report of the finished move, if it ran.
	Report *cutover.Report
	Err    error
	// Done, Failed and Total count moves. ETA is the time left, from
	// the moves' estimates (Move.Estimate, which the plan's Estimate
	// schedules): what remains of each running move's, then the moves
	// not started on the slots as they free; each scaled by the pace of
	// the moves done so far (their time over their estimates). At the
	// start it is the plan's Estimate.
	Done, Failed, Total int
	ETA                 time.Duration
	At                  time.Time
}

// Subscribe returns a channel of the runner's events of the given kinds
// (all when none are given) and a function that ends the subscription.
// Sending never blocks: events that do not fit in the channel's buffer
// (1024) are dropped, and EventsDropped counts them.
func (r *Runner) Subscribe(kinds ...EventKind) (<-chan *Event, func()) {
	return r.events.Subscribe(kinds...)
}

// EventsDropped is how many events subscribers missed because their
// channel was full, since New: each event a subscription missed counts
// once.
func (r *Runner) EventsDropped() uint64 { return r.events.Dropped() }

// MoveResult is one move's outcome.
type MoveResult struct {
	Move   Move
	Report *cutover.Report
	Err    error
}

// Result is what a drain or refill did.
type Result struct {
	Plan   *Plan
	Moved  []MoveResult
	Failed []MoveResult
	// Before and After are the subject instance's totals as measured
	// before planning and after the moves.
	Before, After Totals
	Elapsed       time.Duration
}

// Drain moves tenants off the instance until threshold holds on it, as
// PlanDrain plans them from a fresh measurement. When the plan cannot
// reach the threshold (tenants that fit nowhere), nothing moves and the
// error says which tenants and why. When moves fail, the others still
// run, and the error wraps ErrMovesFailed.
func (r *Runner) Drain(ctx context.Context, instanceID string, threshold Threshold, opts *DrainOpts) (*Result, error) {
	return r.drain(ctx, instanceID, threshold, opts, moveHooks{})
}

func (r *Runner) drain(ctx context.Context, instanceID string, threshold Threshold, opts *DrainOpts, hooks moveHooks) (*Result, error) {
	involved, o, err := r.drainPass(ctx, instanceID, opts)
	if err != nil {
		return nil, err
	}
	return r.drainOnto(ctx, instanceID, involved, threshold, o, hooks)
}

// drainOnto drains instanceID onto the other instances of involved, and
// no others: only involved is measured, and a plan places tenants only on
// what it measured.
func (r *Runner) drainOnto(ctx context.Context, instanceID string, involved []string, threshold Threshold, o DrainOpts, hooks moveHooks) (*Result, error) {
	return r.run(ctx, instanceID, involved, func(s *Snapshot) (*Plan, error) {
		return PlanDrain(s, instanceID, threshold, &o)
	}, func(t Totals) error {
		if !t.Within(threshold) {
			return fmt.Errorf("drain: %s holds %s after the moves, over the threshold %s", instanceID, formatTotals(t), threshold)
		}
		return nil
	}, hooks)
}

// Refill moves tenants onto the instance from sources, up to its Limits
// or level, as PlanRefill plans them from a fresh measurement.
func (r *Runner) Refill(ctx context.Context, instanceID string, sources []string, level Threshold, opts *RefillOpts) (*Result, error) {
	return r.refill(ctx, instanceID, sources, level, opts, moveHooks{})
}

func (r *Runner) refill(ctx context.Context, instanceID string, sources []string, level Threshold, opts *RefillOpts, hooks moveHooks) (*Result, error) {
	o, err := r.refillOpts(opts)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, instanceID, append([]string{instanceID}, sources...), func(s *Snapshot) (*Plan, error) {
		return PlanRefill(s, instanceID, sources, level, &o)
	}, func(Totals) error { return nil }, hooks)
}

// refillOpts are the caller's options with the Runner's Concurrency.
func (r *Runner) refillOpts(opts *RefillOpts) (RefillOpts, error) {
	var o RefillOpts
	if opts != nil {
		o = *opts
	}
	var err error
	o.Concurrency, err = r.planConcurrency("RefillOpts", o.Concurrency)
	return o, err
}

// planConcurrency is the Concurrency the Runner's plans estimate with:
// its own, since it runs the moves. A caller's that differs is refused,
// not silently replaced.
func (r *Runner) planConcurrency(opts string, asked int) (int, error) {
	if asked != 0 && asked != r.cfg.Concurrency {
		return 0, fmt.Errorf("%w: %s.Concurrency is %d, but this Runner runs Config.Concurrency = %d moves at once, and its plans estimate with that: leave it 0, or set Config.Concurrency",
			ErrInvalid, opts, asked, r.cfg.Concurrency)
	}
	return r.cfg.Concurrency, nil
}

// DryRun measures the fleet and returns the plan a Drain would run,
// estimated from the Mover's rate models, changing nothing. A plan that
// cannot reach the threshold comes estimated, with its error.
func (r *Runner) DryRun(ctx context.Context, instanceID string, threshold Threshold, opts *DrainOpts) (*Plan, error) {
	involved, o, err := r.drainPass(ctx, instanceID, opts)
	if err != nil {
		return nil, err
	}
	s, err := r.measure(ctx, involved)
	if err != nil {
		return nil, err
	}
	p, err := PlanDrain(s, instanceID, threshold, &o)
	return p, r.estimate(ctx, p, err)
}

// estimate estimates a dry run's plan, if the planner returned one, and
// returns the planner's error and the estimator's.
func (r *Runner) estimate(ctx context.Context, p *Plan, planErr error) error {
	if p == nil {
		return planErr
	}
	if err := r.estimator().plan(ctx, p); err != nil {
		return errors.Join(planErr, err)
	}
	return planErr
}

// moveHooks let a chain name and record each move before it starts.
type moveHooks struct {
	// id names the move of m; nil lets cutover name it.
	id func(m Move) string
	// started records a move about to start; an error skips it.
	started func(ctx context.Context, moveID string) error
}

// DryRunRefill measures the fleet and returns the plan a Refill would
// run, estimated from the Mover's rate models, changing nothing.
func (r *Runner) DryRunRefill(ctx context.Context, instanceID string, sources []string, level Threshold, opts *RefillOpts) (*Plan, error) {
	o, err := r.refillOpts(opts)
	if err != nil {
		return nil, err
	}
	s, err := r.measure(ctx, append([]string{instanceID}, sources...))
	if err != nil {
		return nil, err
	}
	p, err := PlanRefill(s, instanceID, sources, level, &o)
	return p, r.estimate(ctx, p, err)
}

// run measures the involved instances, plans, moves, and measures the
// instance again.
func (r *Runner) run(ctx context.Context, instanceID string, involved []string, plan func(*Snapshot) (*Plan, error), check func(Totals) error, hooks moveHooks) (*Result, error) {
	start := time.Now()
	s, err := r.measure(ctx, involved)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if iu := s.find(instanceID); iu != nil {
		res.Before = iu.Totals()
	}
	if res.Plan, err = plan(s); err != nil {
		return res, err
	}
	// The estimate is the progress events' ETA, nothing the moves need:
	// without it they run, and the ETA is 0.
	if err := r.estimator().plan(ctx, res.Plan); err != nil {
		r.cfg.Logger.Warn("drain: the moves run without an estimate", "instance", instanceID, "error", err)
	}
	r.execute(ctx, res, hooks)
	after, err := r.measure(ctx, []string{instanceID})
	if err != nil {
		return res, err
	}
	var checked Totals
	if iu := after.find(instanceID); iu != nil {
		res.After = iu.Totals()
		checked = r.withoutKeptCopies(iu, res.Moved, instanceID)
	}
	res.Elapsed = time.Since(start)
	var errs []error
	if len(res.Failed) > 0 {
		lines := make([]string, len(res.Failed))
		for i, f := range res.Failed {
			lines[i] = fmt.Sprintf("%s (%s -> %s): %v", f.Move.Tenant, f.Move.From, f.Move.To, f.Err)
		}
		errs = append(errs, fmt.Errorf("%w: %d of %d:\n  %s", ErrMovesFailed, len(res.Failed),
			len(res.Plan.Moves), strings.Join(lines, "\n  ")))
	}
	if err := check(checked); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// withoutKeptCopies is the instance's totals without the source copies
// that KeepSources kept of the tenants moved off it: each frees its share
// at Retire, so a drain's threshold is checked as if it had (Result.After
// still says what is on disk).
func (r *Runner) withoutKeptCopies(iu *InstanceUsage, moved []MoveResult, instanceID string) Totals {
	if !r.cfg.KeepSources {
		return iu.Totals()
	}
	kept := map[string]bool{}
	for _, m := range moved {
		if m.Move.From == instanceID {
			kept[m.Move.Database] = true
		}
	}
	rest := *iu
	rest.Other = slices.DeleteFunc(slices.Clone(iu.Other), func(u fleet.Usage) bool { return kept[u.Database] })
	return rest.Totals()
}

// execute runs the plan's moves, Concurrency at a time, in plan order.
func (r *Runner) execute(ctx context.Context, res *Result, hooks moveHooks) {
	moves := res.Plan.Moves
	var mu sync.Mutex
	left := newETA(moves, r.cfg.Concurrency)
	r.events.Emit(EventProgress, &Event{Kind: EventProgress, Total: len(moves), ETA: left.left(time.Now()), At: time.Now()})
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, m := range moves {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		mu.Lock()
		left.start(i, time.Now())
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-sem }()
			r.events.Emit(EventMoveStarted, &Event{Kind: EventMoveStarted, Move: m, Total: len(moves), At: time.Now()})
			rep, err := r.move(ctx, m, hooks)
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			left.finish(i, now, err == nil)
			mr := MoveResult{Move: m, Report: rep, Err: err}
			if err != nil {
				res.Failed = append(res.Failed, mr)
			} else {
				res.Moved = append(res.Moved, mr)
			}
			done := len(res.Moved) + len(res.Failed)
			r.cfg.Logger.Info("drain: move ended", "tenant", m.Tenant, "from", m.From, "to", m.To, "err", err,
				"done", done, "of", len(moves))
			r.events.Emit(EventMoveFinished, &Event{Kind: EventMoveFinished, Move: m, Report: rep, Err: err,
				Done: len(res.Moved), Failed: len(res.Failed), Total: len(moves), At: now})
			r.events.Emit(EventProgress, &Event{Kind: EventProgress, Done: len(res.Moved), Failed: len(res.Failed),
				Total: len(moves), ETA: left.left(now), At: now})
		})
	}
	wg.Wait()
}

func (r *Runner) move(ctx context.Context, m Move, hooks moveHooks) (*cutover.Report, error) {
	// A source retired as soon as its move is done needs no way back: no
	// reverse stream, and no reverse slot made inside the window.
	req := cutover.Request{Tenant: m.Tenant, Target: m.To, NoReverse: !r.cfg.KeepSources}
	if hooks.id != nil {
		req.ID = hooks.id(m)
	}
	if hooks.started != nil {
		if err := hooks.started(ctx, req.ID); err != nil {
			return nil, err
		}
	}
	rep, err := r.cfg.Mover.Move(ctx, req)
	if err != nil || r.cfg.KeepSources {
		return rep, err
	}
	if err := r.cfg.Mover.Retire(ctx, rep.Move); err != nil {
		return rep, fmt.Errorf("moved, but the source copy was not retired: %w", err)
	}
	return rep, nil
}
