package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/replica"
)

// publishedReader is the optional capability of a Publisher to read back
// the route it holds for a tenant, authoritatively (the in-memory and
// PostgreSQL providers have it). Resume uses it to learn whether a switch
// that was cut off went through; without it, Routes is asked.
type publishedReader interface {
	Published(ctx context.Context, tenantID string) (flags.Route, bool, error)
}

// Resume completes or rolls back a move after a crash, from its journal:
// a move whose switch went through is completed (catalog, stream
// finished); any other is rolled back, so the tenant is served by exactly
// one instance. A done move whose Retire was cut off or failed is
// retired. Resuming a move that is over returns its outcome. An ID whose
// journal is not a move's or a conversion's (a chain's) is refused with
// ErrNotAMove, changing nothing.
func (m *Mover) Resume(ctx context.Context, moveID string) (*Report, error) {
	entries, err := m.moveEntries(ctx, moveID)
	if err != nil {
		return nil, err
	}
	var p plan
	var cp convertPlan
	for _, e := range entries {
		if e.Step == StepPlan && e.Status == StatusFinished {
			if err := json.Unmarshal(e.Detail, &cp); err == nil && cp.Kind == "convert" {
				return m.resumeConversion(ctx, moveID, cp)
			}
			if err := json.Unmarshal(e.Detail, &p); err != nil {
				return nil, fmt.Errorf("cutover: resume %q: the journaled plan is unreadable: %w", moveID, err)
			}
		}
	}
	if p.Move == "" {
		return m.closeUnplanned(ctx, moveID, entries)
	}
	locks, err := m.lock(ctx, fmt.Sprintf("move %q", moveID), movePlanLocks(p)...)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume %q: %w", moveID, err)
	}
	defer locks.Release()
	// Read again under the lock: the move may have ended meanwhile.
	if entries, err = m.cfg.Journal.Entries(ctx, moveID); err != nil {
		return nil, err
	}
	tenant, err := m.cfg.Catalog.Locate(ctx, p.Tenant)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume %q: %w", moveID, err)
	}
	src, err := m.cfg.Catalog.Instance(ctx, p.Source)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume %q: source: %w", moveID, err)
	}
	tgt, err := m.cfg.Catalog.Instance(ctx, p.Target)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume %q: target: %w", moveID, err)
	}
	tenant.Instance = p.Source // the fences guard the source copy
	r := m.newRun(p, tenant, src, tgt)
	r.rep.Resumed = true
	defer r.close()

	last := entries[len(entries)-1]
	if !last.Terminal() && isDone(entries) {
		// Done, then a Retire that was cut off or failed: finish it.
		if err := m.retire(ctx, moveID, p); err != nil {
			return r.rep, err
		}
		last = Entry{Step: StepRetire, Status: StatusFinished}
	}
	if last.Terminal() {
		r.rep.RolledBack = last.Step == StepRolledBack
		if r.rep.RolledBack {
			var d map[string]string
			_ = json.Unmarshal(last.Detail, &d)
			r.rep.RollbackReason = d["reason"]
		}
		r.rep.Finished = time.Now()
		return r.rep, nil
	}

	seen := map[Step]Status{} // the furthest status of each step
	for _, e := range entries {
		if seen[e.Step] != StatusFinished {
			seen[e.Step] = e.Status
		}
		var d epochDetail
		if json.Unmarshal(e.Detail, &d) == nil {
			r.route.epoch = max(r.route.epoch, d.Epoch)
		}
	}
	_, r.route.touched = seen[StepPause]
	if _, ok := seen[StepSwitch]; ok {
		r.route.touched = true
	}
	_, r.streamTouched = seen[StepStream]
	if _, ok := seen[StepFence]; ok {
		// The fences that went up, whatever is configured now; Release
		// is idempotent.
		if r.held, err = m.heldBefore(entries); err != nil {
			return r.rep, fmt.Errorf("cutover: resume %q: %w", moveID, err)
		}
	}
	if route, err := m.cfg.Routes.Resolve(ctx, p.Tenant); err == nil {
		r.route.epoch = max(r.route.epoch, route.Epoch)
	}

	switched := seen[StepSwitch] == StatusFinished
	_, r.switchAttempted = seen[StepSwitch]
	if switched {
		err = r.resumeForward(ctx, seen)
	} else {
		err = r.rollback(ctx, fmt.Errorf("resumed after an interruption at %s (%s)", last.Step, last.Status))
		if errors.Is(err, ErrRolledBack) {
			// Rolling back is what Resume was asked to do; the report says why.
			err = nil
		}
	}
	r.rep.Finished = time.Now()
	return r.rep, err
}

// moveEntries returns the journal of a move or a conversion, refusing
// any other kind with ErrNotAMove. Every move's journal begins with its
// plan step.
func (m *Mover) moveEntries(ctx context.Context, id string) ([]Entry, error) {
	entries, err := m.cfg.Journal.Entries(ctx, id)
	if err != nil {
		return nil, err
	}
	if k := entries[0].kind(); k != KindMove || entries[0].Step != StepPlan {
		return nil, fmt.Errorf("%w: %q is the ID of a %s journal that begins with %s; a move's begins with %s",
			ErrNotAMove, id, k, entries[0].Step, StepPlan)
	}
	return entries, nil
}

// isDone reports whether a move's done step finished.
func isDone(entries []Entry) bool {
	for _, e := range entries {
		if e.Step == StepDone && e.Status == StatusFinished {
			return true
		}
	}
	return false
}

// movePlanLocks are the locks of a planned move (see run.wantLocks).
func movePlanLocks(p plan) []Lock {
	return []Lock{tenantLock(p.Tenant), instanceLock(p.Source, true), instanceLock(p.Target, true)}
}

// switchWentThrough reads the tenant's route back from the Publisher:
// the switch went through if it points at the target, unpaused, published
// by this move. Only an authoritative read can tell, so a Publisher
// without Published makes it an error rather than a guess.
func (m *Mover) switchWentThrough(ctx context.Context, r *run) (bool, error) {
	pr, ok := m.cfg.Publisher.(publishedReader)
	if !ok {
		return false, fmt.Errorf("the Publisher (%T) cannot read routes back (it has no Published method)", m.cfg.Publisher)
	}
	route, found, err := pr.Published(ctx, r.p.Tenant)
	if err != nil || !found {
		return false, err
	}
	r.route.epoch = max(r.route.epoch, route.Epoch)
	return route.Move == r.p.Move && route.Instance == r.p.Target && !route.Paused, nil
}

// resumeForward completes a switched move.
func (r *run) resumeForward(ctx context.Context, seen map[Step]Status) error {
	if seen[StepCatalog] != StatusFinished {
		if err := r.step(ctx, StepCatalog, r.recordInCatalog); err != nil {
			return err
		}
	}
	if seen[StepFinishStream] != StatusFinished {
		if err := r.step(ctx, StepFinishStream, r.finishStream); err != nil {
			return err
		}
	}
	return r.step(ctx, StepDone, func(context.Context) (any, error) { return nil, nil })
}

// streamFinisher is the optional capability of a replica.Provider to
// finish a stream without a handle.
type streamFinisher interface {
	Finish(ctx context.Context, spec replica.Spec) error
}

// finishStream finishes the stream, through the handle this run holds or,
// in a move resumed after its switch, without one.
func (r *run) finishStream(ctx context.Context) (any, error) {
	if r.stream != nil {
		return nil, r.stream.Finish(ctx)
	}
	if f, ok := r.m.cfg.Provider.(streamFinisher); ok {
		return nil, f.Finish(ctx, r.spec())
	}
	s, err := r.m.cfg.Provider.Start(ctx, r.spec())
	if err != nil {
		return nil, err
	}
	r.stream = s
	return nil, s.Finish(ctx)
}

// closeUnplanned ends a move interrupted before its plan was recorded:
// nothing else ran, so there is nothing to undo.
func (m *Mover) closeUnplanned(ctx context.Context, moveID string, entries []Entry) (*Report, error) {
	rep := &Report{Move: moveID, Started: entries[0].At, Resumed: true, RolledBack: true,
		RollbackReason: "interrupted before the plan was recorded; nothing was changed"}
	if last := entries[len(entries)-1]; !last.Terminal() {
		r := &stepper{m: m, move: moveID, rep: rep}
		if err := r.step(ctx, StepRolledBack, func(context.Context) (any, error) {
			return map[string]string{"reason": rep.RollbackReason}, nil
		}); err != nil {
			return rep, err
		}
	}
	rep.Finished = time.Now()
	return rep, nil
}

// resumeConversion takes the locks of a conversion's tenants and resumes
// it.
func (m *Mover) resumeConversion(ctx context.Context, moveID string, p convertPlan) (*Report, error) {
	locks, err := m.lock(ctx, fmt.Sprintf("conversion %q", moveID), p.locks()...)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume %q: %w", moveID, err)
	}
	defer locks.Release()
	entries, err := m.cfg.Journal.Entries(ctx, moveID)
	if err != nil {
		return nil, err
	}
	if last := entries[len(entries)-1]; last.Terminal() {
		rep := &Report{Move: moveID, Source: p.Instance, Target: p.NewInstance, Resumed: true,
			RolledBack: last.Step == StepRolledBack, Finished: time.Now()}
		return rep, nil
	}
	return m.resumeConvert(ctx, entries, p)
}
