package drain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
)

// Journal steps of a chain. A chain is journaled under its ID like a move,
// and ends with cutover.StepDone.
const (
	stepChainPlan    cutover.Step = "chain_plan"    // the chain as asked
	stepChainDrain   cutover.Step = "chain_drain"   // an instance drained under the threshold
	stepChainConvert cutover.Step = "chain_convert" // the instance converted
	stepChainRefill  cutover.Step = "chain_refill"  // the converted instance refilled from the spares
	stepChainMove    cutover.Step = "chain_move"    // a tenant move of a stage is about to start
)

// ChainRequest asks for the daisy chain over instances.
type ChainRequest struct {
	// ID names the chain; ResumeChain takes it. Default: "chain-" and the
	// start time.
	ID string
	// Instances to convert, in order.
	Instances []string
	// Spares are the spare capacity: instances that take the tenants
	// drained from the first instance before any is converted, and give
	// them back to each converted instance. The chain never places a
	// tenant elsewhere than on a spare or an instance it converted.
	Spares []string
	// Threshold each instance is drained under before it is converted
	// (the files it may hold, say).
	Threshold Threshold
	// NewID names the converted replica of an instance. Default: the ID
	// with ".1" appended.
	NewID func(old string) string
}

// chainPlan is a chain as journaled.
type chainPlan struct {
	ID        string            `json:"id"`
	Instances []string          `json:"instances"`
	Spares    []string          `json:"spares"`
	Threshold Threshold         `json:"threshold"`
	NewIDs    map[string]string `json:"new_ids"`
}

// Stage is what the chain did for one instance.
type Stage struct {
	Instance, Converted string
	Drain               *Result
	Convert             *cutover.Report
	Refill              *Result
}

// ChainResult is what a chain did.
type ChainResult struct {
	ID     string
	Stages []Stage
}

// Chain runs the daisy chain: for each instance in order, drain it under
// the threshold onto the spares and the instances already converted,
// convert it (cutover.Mover.Convert: every remaining tenant at once), then
// refill the converted instance from the spares, up to its limits. The
// peak extra capacity is the spares'. Each stage is journaled in the
// Mover's journal under the chain's ID; ResumeChain goes on after a crash.
func (r *Runner) Chain(ctx context.Context, req ChainRequest) (*ChainResult, error) {
	if r.cfg.Journal == nil {
		return nil, fmt.Errorf("%w: Config.Journal is nil: a chain needs the Mover's journal to resume", ErrInvalid)
	}
	if len(req.Instances) == 0 || len(req.Spares) == 0 {
		return nil, fmt.Errorf("%w: ChainRequest needs Instances and Spares", ErrInvalid)
	}
	if req.Threshold.IsZero() {
		return nil, fmt.Errorf("%w: ChainRequest.Threshold sets no limit", ErrInvalid)
	}
	for _, s := range req.Spares {
		if slices.Contains(req.Instances, s) {
			return nil, fmt.Errorf("%w: instance %q is both in the chain and a spare", ErrInvalid, s)
		}
	}
	for _, id := range append(slices.Clone(req.Instances), req.Spares...) {
		if _, err := r.cfg.Catalog.Instance(ctx, id); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	newID := req.NewID
	if newID == nil {
		newID = func(old string) string { return old + ".1" }
	}
	p := chainPlan{ID: req.ID, Instances: req.Instances, Spares: req.Spares, Threshold: req.Threshold, NewIDs: map[string]string{}}
	if p.ID == "" {
		p.ID = "chain-" + time.Now().UTC().Format("20060102T150405.000")
	}
	for _, id := range req.Instances {
		p.NewIDs[id] = newID(id)
	}
	if _, err := r.cfg.Journal.Entries(ctx, p.ID); err == nil {
		return nil, fmt.Errorf("drain: chain %q: %w: ResumeChain it, or choose another ID", p.ID, cutover.ErrMoveIDUsed)
	} else if !errors.Is(err, cutover.ErrMoveNotFound) {
		return nil, err
	}
	// Plan the whole chain first: a threshold it cannot reach, or an
	// instance it cannot refill, is refused before anything is moved.
	snap, err := r.measure(ctx, append(slices.Clone(req.Instances), req.Spares...))
	if err != nil {
		return nil, err
	}
	if _, err := PlanChain(snap, req); err != nil {
		return nil, fmt.Errorf("drain: chain %q cannot be planned, so nothing was moved: %w", p.ID, err)
	}
	locks, err := r.lockChain(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	defer locks.Release()
	// The plan begins the chain's journal: an ID already used is refused.
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if _, err := r.cfg.Journal.Append(ctx, cutover.Entry{Move: p.ID, Kind: cutover.KindChain, Seq: 1,
		Step: stepChainPlan, Status: cutover.StatusFinished, Detail: b}); err != nil {
		return nil, fmt.Errorf("drain: chain %q: %w", p.ID, err)
	}
	return r.runChain(ctx, p, nil)
}

// ResumeChain goes on with a chain after a crash: moves it had started are
// resumed (completed or rolled back, and retired if done), the stage it
// was in is run again from a fresh measurement, and the chain continues.
// While another Chain or ResumeChain of it runs, it is refused with
// ErrChainInProgress; an ID that is not a chain's with ErrInvalid.
func (r *Runner) ResumeChain(ctx context.Context, chainID string) (*ChainResult, error) {
	if r.cfg.Journal == nil {
		return nil, fmt.Errorf("%w: Config.Journal is nil", ErrInvalid)
	}
	locks, err := r.lockChain(ctx, chainID)
	if err != nil {
		return nil, err
	}
	defer locks.Release()
	entries, err := r.cfg.Journal.Entries(ctx, chainID)
	if err != nil {
		return nil, err
	}
	if entries[0].Kind != cutover.KindChain {
		return nil, fmt.Errorf("%w: %q is a %s's journal, not a chain's: resume it with cutover.Mover.Resume",
			ErrInvalid, chainID, entries[0].Kind)
	}
	if entries[0].Step != stepChainPlan {
		return nil, fmt.Errorf("%w: chain %q was started as River jobs (fleetjobs.ChainArgs), and its job resumes it: enqueue the job again",
			ErrInvalid, chainID)
	}
	var p chainPlan
	done := map[string]bool{} // "<step> <instance>" finished
	var started []string
	for _, e := range entries {
		var d struct {
			Instance string `json:"instance"`
			Move     string `json:"move"`
		}
		_ = json.Unmarshal(e.Detail, &d)
		switch {
		case e.Step == stepChainPlan:
			if err := json.Unmarshal(e.Detail, &p); err != nil {
				return nil, fmt.Errorf("drain: resume chain %q: unreadable plan: %w", chainID, err)
			}
		case e.Step == stepChainMove:
			started = append(started, d.Move)
		case e.Status == cutover.StatusFinished:
			done[string(e.Step)+" "+d.Instance] = true
		}
	}
	if p.ID == "" {
		return nil, fmt.Errorf("drain: resume chain %q: no plan in the journal", chainID)
	}
	if entries[len(entries)-1].Terminal() {
		return &ChainResult{ID: chainID}, nil
	}
	// Settle every move and conversion the chain started: complete or
	// roll back what a crash interrupted, and retire the source copies
	// of tenant moves that are done (as Drain does), so that the next
	// measurement sees the instances as they really are.
	for _, id := range started {
		es, err := r.cfg.Journal.Entries(ctx, id)
		if errors.Is(err, cutover.ErrMoveNotFound) {
			continue // recorded, then the crash came before it began
		}
		if err != nil {
			return nil, err
		}
		// Open is by step and status together: a move whose Retire
		// failed is open, and Resume retires it.
		last := es[len(es)-1]
		done := last.Terminal() && last.Step == cutover.StepDone
		if !last.Terminal() {
			rep, err := r.cfg.Mover.Resume(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("drain: resume chain %q: move %q: %w", chainID, id, err)
			}
			done = !rep.RolledBack
		}
		if done && !r.cfg.KeepSources && !isConversion(es) {
			if err := r.cfg.Mover.Retire(ctx, id); err != nil {
				return nil, fmt.Errorf("drain: resume chain %q: retire move %q: %w", chainID, id, err)
			}
		}
	}
	return r.runChain(ctx, p, done)
}

// runChain runs the stages not in done.
func (r *Runner) runChain(ctx context.Context, p chainPlan, done map[string]bool) (*ChainResult, error) {
	res := &ChainResult{ID: p.ID}
	var converted []string
	for i, inst := range p.Instances {
		stage := Stage{Instance: inst, Converted: p.NewIDs[inst]}
		// Tenants may go to the spares and to the instances converted so
		// far, nowhere else.
		open := append(slices.Clone(p.Spares), converted...)
		if !done[string(stepChainDrain)+" "+inst] {
			hooks := r.chainHooks(p.ID, fmt.Sprintf("%d-drain", i))
			if err := r.chainStage(ctx, p.ID, stepChainDrain, inst, func(ctx context.Context) error {
				var err error
				stage.Drain, err = r.drainOnto(ctx, inst, append(open, inst), p.Threshold,
					DrainOpts{Concurrency: r.cfg.Concurrency}, hooks)
				return err
			}); err != nil {
				return res, err
			}
		}
		if !done[string(stepChainConvert)+" "+inst] {
			if err := r.chainStage(ctx, p.ID, stepChainConvert, inst, func(ctx context.Context) error {
				var err error
				stage.Convert, err = r.convert(ctx, p, inst)
				return err
			}); err != nil {
				return res, err
			}
		}
		converted = append(converted, p.NewIDs[inst])
		if !done[string(stepChainRefill)+" "+inst] {
			hooks := r.chainHooks(p.ID, fmt.Sprintf("%d-refill", i))
			if err := r.chainStage(ctx, p.ID, stepChainRefill, inst, func(ctx context.Context) error {
				var err error
				stage.Refill, err = r.refill(ctx, p.NewIDs[inst], p.Spares, Threshold{}, nil, hooks)
				return err
			}); err != nil {
				return res, err
			}
		}
		res.Stages = append(res.Stages, stage)
	}
	return res, r.chainJournal(ctx, p.ID, cutover.StepDone, cutover.StatusFinished, map[string]int{"instances": len(p.Instances)})
}

// convert converts inst, or returns the conversion of inst that an
// earlier run of the chain completed. Each conversion's ID is recorded in
// the chain's journal before it starts, so ResumeChain settles one that a
// crash interrupted (it has then rolled back or completed).
func (r *Runner) convert(ctx context.Context, p chainPlan, inst string) (*cutover.Report, error) {
	entries, err := r.cfg.Journal.Entries(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	attempts := 0
	for _, e := range entries {
		var d struct {
			Move    string `json:"move"`
			Convert string `json:"convert"`
		}
		if e.Step != stepChainMove || json.Unmarshal(e.Detail, &d) != nil || d.Convert != inst {
			continue
		}
		attempts++
		es, err := r.cfg.Journal.Entries(ctx, d.Move)
		if errors.Is(err, cutover.ErrMoveNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if last := es[len(es)-1]; last.Terminal() && last.Step == cutover.StepDone {
			return r.cfg.Mover.Resume(ctx, d.Move) // over: its outcome
		}
	}
	id := fmt.Sprintf("%s-convert-%s-%d", p.ID, inst, attempts+1)
	if err := r.chainJournal(ctx, p.ID, stepChainMove, cutover.StatusStarted,
		map[string]string{"move": id, "convert": inst}); err != nil {
		return nil, err
	}
	return r.cfg.Mover.Convert(ctx, cutover.ConvertRequest{ID: id, Instance: inst, NewInstance: p.NewIDs[inst]})
}

// isConversion reports whether a journal is a conversion's.
func isConversion(entries []cutover.Entry) bool {
	for _, e := range entries {
		if e.Step == cutover.StepPlan && e.Status == cutover.StatusFinished {
			var d struct {
				Kind string `json:"kind"`
			}
			return json.Unmarshal(e.Detail, &d) == nil && d.Kind == "convert"
		}
	}
	return false
}

// chainHooks names a stage's moves after the chain and records each in
// the chain's journal before it starts, so ResumeChain can settle it.
func (r *Runner) chainHooks(chainID, stage string) moveHooks {
	return moveHooks{
		id: func(m Move) string {
			return fmt.Sprintf("%s-%s-%s-%s", chainID, stage, m.Tenant, time.Now().UTC().Format("150405.000000"))
		},
		started: func(ctx context.Context, moveID string) error {
			return r.chainJournal(ctx, chainID, stepChainMove, cutover.StatusStarted, map[string]string{"move": moveID})
		},
	}
}

func (r *Runner) chainStage(ctx context.Context, chainID string, step cutover.Step, inst string, fn func(context.Context) error) error {
	detail := map[string]string{"instance": inst}
	if err := r.chainJournal(ctx, chainID, step, cutover.StatusStarted, detail); err != nil {
		return err
	}
	r.cfg.Logger.Info("drain: chain stage", "chain", chainID, "stage", step, "instance", inst)
	if err := fn(ctx); err != nil {
		detail["error"] = err.Error()
		return errors.Join(fmt.Errorf("drain: chain %q: %s of %s: %w", chainID, step, inst, err),
			r.chainJournal(context.WithoutCancel(ctx), chainID, step, cutover.StatusFailed, detail))
	}
	return r.chainJournal(ctx, chainID, step, cutover.StatusFinished, detail)
}

func (r *Runner) chainJournal(ctx context.Context, chainID string, step cutover.Step, status cutover.Status, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	_, err = r.cfg.Journal.Append(ctx, cutover.Entry{Move: chainID, Kind: cutover.KindChain, Step: step, Status: status, Detail: b})
	return err
}

// lockChain takes the chain's lock, so that one process at a time runs
// it, or refuses with ErrChainInProgress naming the holder.
func (r *Runner) lockChain(ctx context.Context, chainID string) (cutover.HeldLocks, error) {
	holder := fmt.Sprintf("chain %q", chainID)
	held, err := cutover.TryLock(ctx, r.cfg.Journal, holder, cutover.Lock{Key: "daisychain.chain:" + chainID})
	var conflict *cutover.LockConflictError
	if errors.As(err, &conflict) {
		by := conflict.Conflicts[0].Holder
		if by == "" {
			by = "another process"
		}
		return nil, fmt.Errorf("%w: chain %q is being run by %s (the lock of a run whose host died goes within %s)",
			ErrChainInProgress, chainID, by, cutover.LockOrphanTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("drain: lock chain %q: %w", chainID, err)
	}
	return held, nil
}

// String summarizes a chain result.
func (c *ChainResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chain %s:\n", c.ID)
	for _, s := range c.Stages {
		moved := func(res *Result) int {
			if res == nil {
				return 0
			}
			return len(res.Moved)
		}
		window := time.Duration(0)
		if s.Convert != nil {
			window = s.Convert.Window
		}
		fmt.Fprintf(&b, "  %s: drained %d tenants, converted to %s (window %s), refilled %d\n",
			s.Instance, moved(s.Drain), s.Converted, window.Round(time.Millisecond), moved(s.Refill))
	}
	return b.String()
}
