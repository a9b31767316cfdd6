package cutover

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// ErrNotRetirable: the move is not done (or its tenant is not where the
// move put it), so its source copy is still the way back and is kept.
var ErrNotRetirable = errors.New("cutover: move cannot be retired")

// Retire ends a done move's rollback period: it ends the move's reverse
// stream, if it has one (the slot and publication on the target, the
// subscription on the source), and drops the tenant's database on the
// source, which the move left fenced and intact, freeing its files and
// bytes there; a retired move cannot be reverted. It refuses, changing nothing, unless the
// move is done and both the catalog and the published route have the
// tenant on the move's target (a reverted move is refused). Retiring a
// retired move does nothing; a
// Retire that failed (or was cut off) is done by the next one, or by
// Resume, and leaves the move listed as open until then. An ID that is
// not a move's is refused with ErrNotAMove.
//
// Then the tenant's route says what the catalog says, so where the
// Publisher can (flags.RouteForgetter) Retire deletes it: the route table
// holds overrides, not the history of every move, and readers fall back
// to the catalog. A route that cannot be forgotten is kept, which is
// harmless; the journal's retire entry says which.
func (m *Mover) Retire(ctx context.Context, moveID string) error {
	entries, err := m.moveEntries(ctx, moveID)
	if err != nil {
		return err
	}
	p, err := retirablePlan(moveID, entries)
	if err != nil {
		return err
	}
	if done, err := retirable(moveID, entries); done || err != nil {
		return err
	}
	// The source instance too, shared: no conversion may take it while
	// its copy of the tenant is dropped.
	locks, err := m.lock(ctx, fmt.Sprintf("move %q", moveID), tenantLock(p.Tenant), instanceLock(p.Source, true))
	if err != nil {
		return fmt.Errorf("cutover: retire %q: %w", moveID, err)
	}
	defer locks.Release()
	return m.retire(ctx, moveID, p)
}

// retirable says whether a move's journal lets it be retired: done when
// a Retire finished already (nothing is left to do), an error when the
// move is not done.
func retirable(moveID string, entries []Entry) (done bool, err error) {
	if retired(entries) {
		return true, nil
	}
	switch last := entries[len(entries)-1]; last.Step {
	case StepReverted:
		return false, fmt.Errorf("%w: move %q was reverted: the tenant is on its source again", ErrNotRetirable, moveID)
	case StepRevert:
		return false, fmt.Errorf("%w: a revert of move %q was interrupted: Resume it", ErrNotRetirable, moveID)
	}
	if !isDone(entries) {
		last := entries[len(entries)-1]
		return false, fmt.Errorf("%w: move %q ends with %s (%s), and it is not %s", ErrNotRetirable, moveID, last.Step, last.Status, StepDone)
	}
	return false, nil
}

// retired reports whether a move's Retire finished.
func retired(entries []Entry) bool { return finished(entries, StepRetire) }

// retirablePlan reads a tenant move's plan from its journal.
func retirablePlan(moveID string, entries []Entry) (plan, error) {
	p, _, err := journaledPlan(moveID, entries)
	if err != nil {
		return plan{}, fmt.Errorf("cutover: retire: %w", err)
	}
	if p.convert() || p.Tenant == "" {
		return plan{}, fmt.Errorf("%w: %q has no tenant move's plan (a conversion leaves its old instance to its owner)", ErrNotRetirable, moveID)
	}
	return p, nil
}

// retire drops the source copy of a done move, the caller holding the
// tenant's lock.
func (m *Mover) retire(ctx context.Context, moveID string, p plan) error {
	// Read again under the lock: another Retire may have ended it.
	entries, err := m.cfg.Journal.Entries(ctx, moveID)
	if err != nil {
		return err
	}
	if done, err := retirable(moveID, entries); done || err != nil {
		return err
	}
	// Both the catalog and the published route must have the tenant on
	// the move's target, read in this order; a read that fails is not a
	// refusal.
	var tenant fleet.Tenant
	for _, on := range []struct {
		read    func() (string, error)
		refusal string
	}{
		{func() (string, error) {
			var err error
			tenant, err = m.cfg.Catalog.Locate(ctx, p.Tenant)
			return tenant.Instance, err
		}, "the catalog has tenant %q on %q, not on the move's target %q"},
		{func() (string, error) {
			route, err := m.cfg.Routes.Resolve(ctx, p.Tenant)
			return route.Instance, err
		}, "tenant %q is routed to %q, not to the move's target %q"},
	} {
		instance, err := on.read()
		if err != nil {
			return fmt.Errorf("cutover: retire %q: %w", moveID, err)
		}
		if instance != p.Target {
			return fmt.Errorf("%w: "+on.refusal, ErrNotRetirable, p.Tenant, instance, p.Target)
		}
	}
	src, err := m.cfg.Catalog.Instance(ctx, p.Source)
	var dst fleet.Instance
	if err == nil {
		dst, err = m.cfg.Catalog.Instance(ctx, p.Target)
	}
	if err != nil {
		return fmt.Errorf("cutover: retire %q: %w", moveID, err)
	}
	r := &stepper{m: m, move: moveID, subject: p.Tenant, rep: &Report{}}
	return r.step(ctx, StepRetire, func(ctx context.Context) (any, error) {
		conn, err := connectAdmin(ctx, src, p.Database)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		reverse := "none"
		if _, made := seenSteps(entries)[StepReversePrepare]; made {
			// Its subscription keeps the database from being dropped,
			// its slot holds WAL on the target.
			rp, ok := m.cfg.Provider.(ReverseProvider)
			if !ok {
				return nil, fmt.Errorf("the Provider (%T) cannot remove the move's reverse stream", m.cfg.Provider)
			}
			if err := rp.AbortReverse(ctx, reverseOf(p, src.Admin, dst.Admin)); err != nil {
				return nil, err
			}
			reverse = "ended"
		}
		// FORCE ends what the fence let live (replication sessions).
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{p.Database}.Sanitize()+" WITH (FORCE)"); err != nil {
			return nil, err
		}
		return map[string]string{"dropped": p.Database, "on": p.Source, "reverse": reverse,
			"route": m.forgetRoute(ctx, tenant, dst)}, nil
	})
}

// forgetRoute deletes the tenant's published route once it says what the
// catalog says (the move's target, unpaused), so that the route table
// holds overrides, not the history of every move: readers then fall back
// to the catalog and find the same place. It never fails a Retire, whose
// work is done: keeping a route is harmless. It returns what it did.
func (m *Mover) forgetRoute(ctx context.Context, tenant fleet.Tenant, inst fleet.Instance) string {
	forgetter, ok := m.cfg.Publisher.(flags.RouteForgetter)
	reader, readable := m.cfg.Publisher.(PublishedReader)
	if !ok || !readable {
		return "kept: the Publisher cannot forget routes"
	}
	route, found, err := reader.Published(ctx, tenant.ID)
	switch {
	case err != nil:
		return "kept: " + err.Error()
	case !found:
		return "none"
	case route.Paused || route.Instance != inst.ID || route.Endpoint != flags.RouteTo(inst, tenant.Database, 0).Endpoint:
		return "kept: it is not the catalog's route"
	}
	deleted, err := forgetter.Forget(ctx, tenant.ID, route.Epoch)
	switch {
	case err != nil:
		return "kept: " + err.Error()
	case !deleted:
		return "kept: published again since"
	}
	return "forgotten"
}
