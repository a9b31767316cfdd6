package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// journaling says which of a step's entries the journal gets. Outside the
// window every step journals its start and its end; inside it, where
// each round trip to the control database lengthens the window, a step
// journals only what Resume decides by. A failure is always journaled.
type journaling int

const (
	// journalBoth: the started and the finished entry.
	journalBoth journaling = iota
	// journalStart: the started entry only. Resume needs to know the
	// step may have begun (routes paused, fences up, an instance
	// registered), not that it ended.
	journalStart
	// journalFailure: neither; Resume decides nothing by the step.
	journalFailure
)

// stepDef is one step of a run's table: DryRun lists the table, the run
// runs it.
type stepDef struct {
	step    Step
	journal journaling
	// startDetail, if set, is journaled with the started entry: what
	// Resume must know even if the step never ends (the fences).
	startDetail func() (any, error)
	run         func(ctx context.Context) (detail any, err error)
}

// stepper journals and reports the steps of one run.
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
	// est is the run's estimate, for its events' ETA; nil without one.
	est *Estimate
	// switchAttempted: a switch was published, perhaps with its outcome
	// unknown; a rollback must first find out whether it went through.
	switchAttempted bool
}

// step journals a step as started, runs it, and journals it as finished
// (with the detail fn returns) or failed.
func (sp *stepper) step(ctx context.Context, s Step, fn func(ctx context.Context) (detail any, err error)) error {
	return sp.do(ctx, stepDef{step: s, run: fn})
}

// do runs one step of a table, journaling it as d.journal says.
func (sp *stepper) do(ctx context.Context, d stepDef) error {
	s := d.step
	log := sp.m.cfg.Logger.With("move", sp.move, "subject", sp.subject, "step", s)
	if d.journal != journalFailure {
		var startDetail any
		if d.startDetail != nil {
			var err error
			if startDetail, err = d.startDetail(); err != nil {
				return &StepError{Move: sp.move, Step: s, Err: err}
			}
		}
		if err := sp.journal(ctx, s, StatusStarted, startDetail); err != nil {
			return &StepError{Move: sp.move, Step: s, Err: err}
		}
	}
	sp.m.emit(&Event{Kind: EventStepStarted, Move: sp.move, Tenant: sp.subject, Step: s, ETA: sp.eta(s, 0, 0)})
	log.Debug("cutover: step started")
	start := time.Now()
	var detail any
	var err error
	if hook := sp.m.cfg.BeforeStep; hook != nil {
		err = hook(ctx, sp.move, s)
	}
	if err == nil {
		detail, err = d.run(ctx)
	}
	elapsed := time.Since(start)
	timing := StepTiming{Step: s, Duration: elapsed}
	status := StatusFinished
	if err != nil {
		timing.Err, status, detail = err.Error(), StatusFailed, map[string]string{"error": err.Error()}
	}
	sp.rep.Steps = append(sp.rep.Steps, timing)
	sp.m.emit(&Event{Kind: EventStepFinished, Move: sp.move, Tenant: sp.subject, Step: s, Elapsed: elapsed, Err: err,
		ETA: sp.eta(s, math.MaxInt64, 0)})
	// The outcome is journaled even when ctx ended, or Resume would not
	// know it.
	if d.journal == journalBoth || err != nil {
		if jerr := sp.journal(context.WithoutCancel(ctx), s, status, detail); jerr != nil {
			err = errors.Join(err, jerr)
		}
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

// switchStep runs the switch, which publishes the routes to the
// destination. Once it starts it runs to its end whatever the window's
// context does (bounded on its own): a publish cut off half-way would
// leave its outcome unknown.
func (sp *stepper) switchStep(ctx context.Context, d stepDef) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	publish := d.run
	d.run = func(ctx context.Context) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sp.switchAttempted = true
		detail, err := publish(ctx)
		if err == nil {
			sp.closeWindow()
		}
		return detail, err
	}
	return sp.do(context.WithoutCancel(ctx), d)
}

// checkLocks stops a run whose locks were lost (their session ended)
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

// rolledBack ends a run whose rollback worked: the report, the terminal
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
func (sp *stepper) rollbackReason(cause error) string {
	reason := cause.Error()
	var se *StepError
	if errors.As(cause, &se) {
		reason = fmt.Sprintf("%s: %v", se.Step, se.Err)
	}
	if errors.Is(cause, ErrBudgetExceeded) {
		reason = fmt.Sprintf("window budget of %s exceeded at %s", sp.m.cfg.WindowBudget, reason)
	}
	return reason
}
