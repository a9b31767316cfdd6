package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
)

// Resume completes or rolls back a move or a conversion after a crash,
// from its journal: one whose switch went through is completed (catalog,
// stream finished); any other is rolled back, so every tenant is served
// by exactly one instance. A done move whose Retire was cut off or
// failed is retired. A revert (Revert) is resumed the same way, by its
// own ID or by the move's: completed once its switch went through, else
// rolled back, the tenant staying on the move's target. Resuming a run
// that is over returns its outcome. An
// ID whose journal is not a move's or a conversion's (a chain's) is
// refused with ErrNotAMove, changing nothing.
func (m *Mover) Resume(ctx context.Context, moveID string) (_ *Report, err error) {
	entries, err := m.moveEntries(ctx, moveID)
	if err != nil {
		return nil, err
	}
	p, found, err := journaledPlan(moveID, entries)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume: %w", err)
	}
	if !found {
		return m.closeUnplanned(ctx, moveID, entries)
	}
	if last := entries[len(entries)-1]; last.Step == StepRevert {
		return m.resumeRevertOf(ctx, moveID, last)
	}
	if p.revert() {
		// However it ends, the move's journal says so.
		defer func() {
			if eerr := m.endRevert(ctx, p); eerr != nil {
				err = errors.Join(err, eerr)
			}
		}()
	}
	locks, err := m.lock(ctx, p.holder(), p.locks(0, 0)...)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume %q: %w", moveID, err)
	}
	defer locks.Release()
	// Read again under the lock: the run may have ended meanwhile.
	if entries, err = m.cfg.Journal.Entries(ctx, moveID); err != nil {
		return nil, err
	}
	r, err := m.resumedRun(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume %q: %w", moveID, err)
	}
	r.rep.Resumed = true
	defer r.close(ctx)

	last := entries[len(entries)-1]
	if !last.Terminal() && isDone(entries) && !p.convert() && !p.revert() {
		// Done, then a Retire that was cut off or failed: finish it.
		if err := m.retire(ctx, moveID, p); err != nil {
			return r.rep, err
		}
		last = Entry{Step: StepRetire, Status: StatusFinished}
	}
	if last.Terminal() {
		r.rep.RolledBack = last.Step == StepRolledBack
		var d map[string]string
		_ = json.Unmarshal(last.Detail, &d)
		if r.rep.RolledBack {
			r.rep.RollbackReason = d["reason"]
		}
		if last.Step == StepReverted {
			r.rep.RevertedBy = d["revert"]
		}
		r.rep.Finished = time.Now()
		return r.rep, nil
	}

	seen := seenSteps(entries)
	if err := r.restore(ctx, entries, seen); err != nil {
		return r.rep, fmt.Errorf("cutover: resume %q: %w", moveID, err)
	}
	if seen[StepSwitch] == StatusFinished {
		err = r.afterSwitch(ctx, nil, seen)
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

// resumedRun rebuilds the run of a journaled plan from the catalog.
func (m *Mover) resumedRun(ctx context.Context, p plan) (*run, error) {
	src, err := m.cfg.Catalog.Instance(ctx, p.source())
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	// A conversion's new instance is in the catalog only once registered.
	tgt, err := m.cfg.Catalog.Instance(ctx, p.destination())
	if err != nil && (!p.convert() || !errors.Is(err, fleet.ErrInstanceNotFound)) {
		return nil, fmt.Errorf("target: %w", err)
	}
	tenants := p.Tenants
	if !p.convert() {
		tenants = []fleet.Tenant{{ID: p.Tenant, Database: p.Database, Instance: p.Source}}
	}
	return m.newRun(p, tenants, src, tgt), nil
}

// restore sets what the journal says the interrupted run did: which
// routes it may have published, and at which epochs; which fences may be
// up; what of the copy exists.
func (r *run) restore(ctx context.Context, entries []Entry, seen map[Step]Status) error {
	floor := journaledEpoch(entries)
	for i := range r.routes {
		r.routes[i].epoch = floor
	}
	_, paused := seen[StepPause]
	_, r.switchAttempted = seen[StepSwitch]
	if paused || r.switchAttempted {
		if err := r.readRoutesBack(ctx); err != nil {
			return err
		}
	}
	if err := r.copy.resumed(entries, seen); err != nil {
		return err
	}
	if _, ok := seen[StepFence]; ok {
		// The fences that went up, whatever is configured now; Release
		// is idempotent.
		held, err := r.m.heldBefore(entries)
		if err != nil {
			return err
		}
		r.held = held
	}
	return nil
}

// readRoutesBack learns which routes the run published, and their
// epochs: from the Publisher, a route is the run's to undo only if the
// run published it; without Published, every route is taken as touched,
// at the epoch Routes has.
func (r *run) readRoutesBack(ctx context.Context) error {
	pr, ok := r.m.cfg.Publisher.(PublishedReader)
	if !ok {
		routes, err := r.m.resolveSet(ctx, r.routeTenants())
		if err != nil {
			routes = nil
		}
		for i := range r.routes {
			tr := &r.routes[i]
			tr.touched = true
			if i < len(routes) && routes[i].err == nil {
				tr.epoch = max(tr.epoch, routes[i].route.Epoch)
			}
		}
		return nil
	}
	routes, err := r.m.publishedSet(ctx, pr, r.routeTenants())
	if err != nil {
		return err
	}
	for i, p := range routes {
		if tr := &r.routes[i]; p.found {
			tr.epoch = max(tr.epoch, p.route.Epoch)
			tr.touched = p.route.Move == r.p.Move
		}
	}
	return nil
}

// routeTenants are the IDs of the run's routes, in their order.
func (r *run) routeTenants() []string {
	ids := make([]string, len(r.routes))
	for i, tr := range r.routes {
		ids[i] = tr.tenant
	}
	return ids
}

// journaledEpoch is the highest epoch the journal says the run
// published; journals written before held one detail per tenant.
func journaledEpoch(entries []Entry) int64 {
	var floor int64
	for _, e := range entries {
		var one epochDetail
		var many []epochDetail
		if json.Unmarshal(e.Detail, &one) == nil {
			floor = max(floor, one.Epoch)
		} else if json.Unmarshal(e.Detail, &many) == nil {
			for _, d := range many {
				floor = max(floor, d.Epoch)
			}
		}
	}
	return floor
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

// seenSteps maps each journaled step to its furthest status.
func seenSteps(entries []Entry) map[Step]Status {
	seen := map[Step]Status{}
	for _, e := range entries {
		if seen[e.Step] != StatusFinished {
			seen[e.Step] = e.Status
		}
	}
	return seen
}

// isDone reports whether a move's done step finished.
func isDone(entries []Entry) bool { return finished(entries, StepDone) }

// finished reports whether step finished in the journal.
func finished(entries []Entry, step Step) bool {
	return slices.ContainsFunc(entries, func(e Entry) bool { return e.Step == step && e.Status == StatusFinished })
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
