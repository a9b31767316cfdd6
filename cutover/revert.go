package cutover

// Revert: taking a moved tenant back to its source, with nothing lost.
//
// # The reverse stream
//
// From the switch on, a move's tenant writes to its target; a reverse
// stream carries those writes back to the source copy, so that Revert can
// take the tenant back within the rollback period (until Retire). A move
// makes one by default when its Provider can (ReverseProvider and the
// stream's ReverseMaker: replica/logical's); Config.NoReverse turns it
// off. PostgreSQL 15 shapes where each part is made:
//
//   - A subscription has no origin filter before PostgreSQL 16: a reverse
//     subscription applying while the forward one runs would send each
//     change back and forth. So the reverse's subscription (on the source
//     copy) is created only after the forward stream is finished (its
//     subscription dropped): StepReverse runs after StepFinishStream, and
//     Resume runs them in that order.
//   - The reverse's slot must decode every write of the application to
//     the target and none of the forward stream's changes. Making a
//     logical slot waits for every transaction that has written and is
//     still open on the target server, in any database (another tenant's
//     long transaction), so it is made before the window, with its
//     publication (StepReversePrepare: a decoder does not find a
//     publication created after the WAL it reads either). It then decodes
//     the forward stream's last changes too, so the slot is advanced past
//     them before the reverse's subscription first starts: to the
//     target's WAL insert position read in the window (StepReverseStart,
//     one read), after WaitFor(barrier) returned (the forward stream has
//     applied everything the fenced source will ever send) and before
//     the switch (nothing of the application has reached the target).
//     The position is journaled with the switch's started entry, in the
//     round trip the switch makes anyway, and recorded on the reverse's
//     record after the switch, at the start of StepFinishStream, where
//     it is checked against the forward subscription's replication
//     origin (the end of the last transaction it applied, local_lsn, as
//     long as no restart of the target made the origin forget it). The
//     origin alone cannot be the position: a checkpoint keeps only its
//     remote position, so after a restart it says 0/0.
//   - A logical apply worker cannot connect to a database with
//     ALLOW_CONNECTIONS false, which is what the database fence leaves on
//     the source copy. So StepReverse fences the source copy by privileges
//     instead (privilege_fence.go): CONNECT revoked from every role that
//     has it, PUBLIC included, but the admin role; a check that no role
//     that can log in may still connect; only then ALLOW_CONNECTIONS true,
//     and every session of another role ended. The admin and the apply
//     worker are superusers (a subscription needs one), which privileges
//     do not bind: neither do they bind an application that connects as a
//     superuser. So the source copy's sessions are also read-only by
//     default (default_transaction_read_only on for the database, off for
//     the admin role in it): another superuser's write is refused, 25006.
//     An application connected as the admin role itself is bound by
//     nothing and must not be pointed at a source copy (its route is on
//     the target; a Router never is). Revert resets both settings with
//     the grants, in its open_source step.
//
// # What the window costs
//
// One read on a session the stream holds (StepReverseStart); the
// position rides in the switch's journal entry. The reverse is made
// before the window and its start recorded after. (Recording it in the
// window cost a catalog commit on the target: about 10 ms of every move's
// window.)
//
// # What the journal records
//
// The move's journal: StepReversePrepare (before the window, finished
// with who could connect to the source database: what a Revert gives
// back; a rollback removes the reverse when it was journaled, before it
// drops the target database, which the slot would keep from being
// dropped); StepSwitch's started entry, with where the reverse starts;
// StepFinishStream, finished with it too;
// StepReverse (started and finished: Resume after the switch runs it
// again, and each of its parts is idempotent). Then StepDone. A Revert
// appends StepRevert started (naming its own journal) and, when it ends,
// StepReverted (the tenant is back: terminal) or StepDone again (the
// revert rolled back: the move stands). The guard appends
// StepReverseDropped (terminal: done, with no way back but the frozen
// source copy).
//
// A Revert is a run of its own, under the ID "<move>/revert-<n>", whose
// plan says which move it reverts: the same window as a move the other
// way, so it is journaled, budgeted, rolled back and resumed as a move
// is: Resume of either ID resumes it. Its steps: plan, preflight (the
// reverse is there and within its WAL bound, the routes on the target),
// stream (the reverse opened), catch_up, then the window: pause, quiesce,
// fence (the database fence of the target, sparing the reverse's
// sessions), barrier (on the target), wait_target (the source copy has
// applied it), sync_sequences (target to source), snapshot (schema
// checked, the source copy's state held), open_source (the source copy's
// CONNECT grants given back: one statement on a session held from
// before the window), switch (the routes to the source); after it,
// catalog, verify (the held snapshot against the fenced target),
// finish_stream (the reverse ended, then the target copy dropped), done.
// A failure before the switch rolls it back: the fences down, the routes
// back to the target, the source copy fenced by privileges again, the
// reverse left running for another try.
//
// # The guard
//
// The target retains WAL for the reverse slot until the reverse's
// subscription confirms it; a source copy that cannot keep up, or is
// down, makes it pile up on the serving instance. CheckReverse (which
// Revert runs first) drops the reverse stream when the slot retains more
// than Config.MaxReverseWAL, or was invalidated, with
// EventReverseDropped and StepReverseDropped; Revert then refuses with
// ErrNotRevertible saying why. Call CheckReverse periodically for moves
// in their rollback period (the library runs nothing in the background
// after Move returns); the target's max_slot_wal_keep_size bounds the
// slot in the server too.
//
// # Conversions
//
// A Convert makes no reverse stream, and cannot be reverted; nor does it
// take an instance that holds a reverse stream's slot or subscription
// (its preflight says which: retire or revert those moves first), since a
// replica does not carry logical slots and does carry subscriptions. Its
// old instance stays fenced and intact after the switch (each tenant
// database with ALLOW_CONNECTIONS false), holding the tenants as of the
// window. To go back after a conversion, move the tenants back with Move
// (each a new move, from the converted instance to the old one, once the
// old copies are dropped or renamed), or, to go back to the state of the
// window and lose what was written since, publish routes to the old
// instance, fix the catalog, and ALTER DATABASE ... ALLOW_CONNECTIONS
// true each tenant database there.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// ErrNotRevertible: the move cannot be reverted: it is not a done tenant
// move, it has no reverse stream (Config.NoReverse, or the guard dropped
// it), it was retired or reverted already. The error says which. Nothing
// was changed.
var ErrNotRevertible = errors.New("cutover: move cannot be reverted")

// Revert takes a done move's tenant back to its source: the window of a
// move the other way (see the package's revert.go), under
// Config.WindowBudget, after which every write acknowledged on the
// target is on the source, which serves again. Before its switch any
// failure rolls it back (the error wraps ErrRolledBack; the tenant stays
// on the target and the move can be reverted again); after it, it only
// goes forward, and Resume completes it. The report's Move is the
// revert's own ID, "<moveID>/revert-<n>".
//
// It refuses with ErrNotRevertible, changing nothing, a move that is not
// a done tenant move, has no reverse stream, or was retired or
// reverted; with ErrMoveInProgress while another mover holds the tenant;
// and a move whose revert was interrupted says to Resume it.
func (m *Mover) Revert(ctx context.Context, moveID string) (*Report, error) {
	entries, err := m.moveEntries(ctx, moveID)
	if err != nil {
		return nil, err
	}
	p, err := revertiblePlan(moveID, entries)
	if err != nil {
		return nil, err
	}
	if err := revertible(moveID, entries); err != nil {
		return nil, err
	}
	locks, err := m.lock(ctx, fmt.Sprintf("revert of %q", moveID), p.locks(0, 0)...)
	if err != nil {
		return nil, fmt.Errorf("cutover: revert %q: %w", moveID, err)
	}
	defer locks.Release()
	// Read again under the locks: a Retire or another Revert may have
	// ended it meanwhile.
	if entries, err = m.cfg.Journal.Entries(ctx, moveID); err != nil {
		return nil, err
	}
	if err := revertible(moveID, entries); err != nil {
		return nil, err
	}
	src, err := m.cfg.Catalog.Instance(ctx, p.Source)
	var tgt fleet.Instance
	if err == nil {
		tgt, err = m.cfg.Catalog.Instance(ctx, p.Target)
	}
	if err != nil {
		return nil, fmt.Errorf("cutover: revert %q: %w", moveID, err)
	}
	if err := m.checkReverse(ctx, p, src, tgt); err != nil {
		return nil, err
	}
	grantees, err := journaledGrantees(entries)
	if err != nil {
		return nil, fmt.Errorf("cutover: revert %q: %w", moveID, err)
	}
	n := 1
	for _, e := range entries {
		if e.Step == StepRevert && e.Status == StatusStarted {
			n++
		}
	}
	rp := plan{Kind: kindRevert, Move: fmt.Sprintf("%s/revert-%d", moveID, n), Reverts: moveID,
		Tenant: p.Tenant, Database: p.Database, Source: p.Target, Target: p.Source, Verify: m.cfg.Verify, Connect: grantees}
	if err := m.checkIDUnused(ctx, rp.Move); err != nil {
		return nil, err
	}
	// The move's journal names the revert before the revert's begins:
	// Resume of the move finds it from there.
	note := &stepper{m: m, move: moveID, subject: p.Tenant, rep: &Report{}}
	if err := note.journal(ctx, StepRevert, StatusStarted, map[string]string{"revert": rp.Move}); err != nil {
		return nil, fmt.Errorf("cutover: revert %q: %w", moveID, err)
	}
	tenant := fleet.Tenant{ID: p.Tenant, Database: p.Database, Instance: p.Target}
	r := m.newRun(rp, []fleet.Tenant{tenant}, tgt, src)
	r.locks, r.first = locks, true
	defer r.close(ctx)
	err = r.forward(ctx)
	if eerr := m.endRevert(ctx, rp); eerr != nil {
		err = errors.Join(err, eerr)
	}
	r.rep.Finished = time.Now()
	return r.rep, err
}

// revertiblePlan reads a tenant move's plan that made a reverse stream.
func revertiblePlan(moveID string, entries []Entry) (plan, error) {
	p, found, err := journaledPlan(moveID, entries)
	switch {
	case err != nil:
		return plan{}, fmt.Errorf("cutover: revert: %w", err)
	case !found || p.convert() || p.revert() || p.Tenant == "":
		return plan{}, fmt.Errorf("%w: %q is not a tenant move's journal (a conversion cannot be reverted: see the cutover package's docs)", ErrNotRevertible, moveID)
	case !p.Reverse:
		return plan{}, fmt.Errorf("%w: move %q made no reverse stream (Config.NoReverse, or a Provider without ReverseProvider), so the source copy lacks the target's writes", ErrNotRevertible, moveID)
	}
	return p, nil
}

// revertible says why a move's journal does not let it be reverted now.
func revertible(moveID string, entries []Entry) error {
	last := entries[len(entries)-1]
	switch {
	case last.Step == StepRevert:
		var d map[string]string
		_ = json.Unmarshal(last.Detail, &d)
		return fmt.Errorf("%w: a revert of move %q (%q) was interrupted: Resume it", ErrMoveInProgress, moveID, d["revert"])
	case retired(entries):
		return fmt.Errorf("%w: move %q was retired: its source copy is gone", ErrNotRevertible, moveID)
	case last.Step == StepReverted:
		return fmt.Errorf("%w: move %q was reverted already: the tenant is on its source", ErrNotRevertible, moveID)
	case last.Step == StepReverseDropped:
		var d map[string]string
		_ = json.Unmarshal(last.Detail, &d)
		return fmt.Errorf("%w: the reverse stream of move %q was dropped: %s", ErrNotRevertible, moveID, d["reason"])
	case !last.Terminal() || !isDone(entries):
		return fmt.Errorf("%w: move %q ends with %s (%s), and it is not %s: Resume it first", ErrNotRevertible, moveID, last.Step, last.Status, StepDone)
	case !finished(entries, StepReverse):
		return fmt.Errorf("%w: move %q never started its reverse stream", ErrNotRevertible, moveID)
	}
	for _, e := range entries {
		var d map[string]string
		if e.Step == StepReverse && e.Status == StatusFinished && json.Unmarshal(e.Detail, &d) == nil && d["skipped"] != "" {
			return fmt.Errorf("%w: move %q ended without its reverse stream (%s)", ErrNotRevertible, moveID, d["skipped"])
		}
	}
	return nil
}

// endRevert notes in the move's journal how its revert ended, once the
// revert's journal says it is over: StepReverted, or StepDone again when
// it rolled back. A revert still open notes nothing (Resume ends it).
func (m *Mover) endRevert(ctx context.Context, rp plan) error {
	ctx = context.WithoutCancel(ctx)
	rev, err := m.cfg.Journal.Entries(ctx, rp.Move)
	if err != nil {
		return err
	}
	last := rev[len(rev)-1]
	if !last.Terminal() {
		return nil
	}
	entries, err := m.cfg.Journal.Entries(ctx, rp.Reverts)
	if err != nil {
		return err
	}
	if entries[len(entries)-1].Step != StepRevert {
		return nil // noted already
	}
	note := &stepper{m: m, move: rp.Reverts, subject: rp.Tenant, rep: &Report{}}
	if last.Step == StepDone {
		return note.journal(ctx, StepReverted, StatusFinished, map[string]string{"revert": rp.Move})
	}
	return note.journal(ctx, StepDone, StatusFinished, map[string]string{"revert": rp.Move, "outcome": "rolled back: the tenant stays on the target"})
}

// resumeRevertOf resumes the revert a move's journal says was
// interrupted (its last entry is StepRevert).
func (m *Mover) resumeRevertOf(ctx context.Context, moveID string, last Entry) (*Report, error) {
	var d map[string]string
	if err := json.Unmarshal(last.Detail, &d); err != nil || d["revert"] == "" {
		return nil, fmt.Errorf("cutover: resume %q: the journaled revert is unreadable", moveID)
	}
	if _, err := m.cfg.Journal.Entries(ctx, d["revert"]); errors.Is(err, ErrMoveNotFound) {
		// Killed before the revert's plan was journaled: nothing of it
		// ran, so the move stands.
		note := &stepper{m: m, move: moveID, rep: &Report{}}
		return &Report{Move: d["revert"], Kind: kindRevert, Reverts: moveID, Resumed: true, RolledBack: true,
				RollbackReason: "interrupted before its plan was recorded; nothing was changed"},
			note.journal(ctx, StepDone, StatusFinished, map[string]string{"revert": d["revert"], "outcome": "interrupted before it began"})
	}
	rep, err := m.Resume(ctx, d["revert"])
	if err == nil {
		// A revert cut off before its plan was journaled ends without
		// its plan, which names the move: note its end here.
		err = m.endRevert(ctx, plan{Move: d["revert"], Reverts: moveID})
	}
	return rep, err
}

// CheckReverse is the guard of a done move's reverse stream: it reads the
// WAL the target retains for the reverse's slot and, when that is over
// Config.MaxReverseWAL or the target invalidated the slot or it is gone,
// it drops the reverse stream, journals StepReverseDropped, emits
// EventReverseDropped, and returns an error wrapping ErrNotRevertible
// that says why (and replica.ErrWALLimit or replica.ErrSlotLost). It
// returns the bytes retained. A move that has no reverse stream to guard
// is ErrNotRevertible, changing nothing. Call it periodically during the
// rollback period; Revert calls it first.
func (m *Mover) CheckReverse(ctx context.Context, moveID string) (int64, error) {
	entries, err := m.moveEntries(ctx, moveID)
	if err != nil {
		return 0, err
	}
	p, err := revertiblePlan(moveID, entries)
	if err != nil {
		return 0, err
	}
	if err := revertible(moveID, entries); err != nil {
		return 0, err
	}
	locks, err := m.lock(ctx, fmt.Sprintf("guard of move %q", moveID), tenantLock(p.Tenant))
	if err != nil {
		return 0, fmt.Errorf("cutover: check reverse of %q: %w", moveID, err)
	}
	defer locks.Release()
	if entries, err = m.cfg.Journal.Entries(ctx, moveID); err != nil {
		return 0, err
	}
	if err := revertible(moveID, entries); err != nil {
		return 0, err
	}
	src, err := m.cfg.Catalog.Instance(ctx, p.Source)
	var tgt fleet.Instance
	if err == nil {
		tgt, err = m.cfg.Catalog.Instance(ctx, p.Target)
	}
	if err != nil {
		return 0, fmt.Errorf("cutover: check reverse of %q: %w", moveID, err)
	}
	retained, _, rerr := m.cfg.Provider.(ReverseProvider).ReverseRetainedWAL(ctx, reverseOf(p, src.Admin, tgt.Admin))
	if rerr != nil && !errors.Is(rerr, replica.ErrSlotLost) {
		return 0, fmt.Errorf("cutover: check reverse of %q: %w", moveID, rerr)
	}
	return retained, m.checkReverse(ctx, p, src, tgt)
}

// checkReverse drops the reverse stream of a move (plan p, from src to
// tgt) that is over its bound (see CheckReverse), the caller holding the
// tenant's lock.
func (m *Mover) checkReverse(ctx context.Context, p plan, src, tgt fleet.Instance) error {
	cause := m.reverseWithinBound(ctx, p, src, tgt)
	if cause == nil || !errors.Is(cause, replica.ErrWALLimit) && !errors.Is(cause, replica.ErrSlotLost) {
		return cause
	}
	rp := m.cfg.Provider.(ReverseProvider)
	if err := rp.AbortReverse(context.WithoutCancel(ctx), reverseOf(p, src.Admin, tgt.Admin)); err != nil {
		return errors.Join(cause, fmt.Errorf("drop the reverse stream: %w", err))
	}
	note := &stepper{m: m, move: p.Move, subject: p.Tenant, rep: &Report{}}
	if err := note.journal(context.WithoutCancel(ctx), StepReverseDropped, StatusFinished, map[string]string{"reason": cause.Error()}); err != nil {
		return errors.Join(cause, err)
	}
	m.emit(&Event{Kind: EventReverseDropped, Move: p.Move, Tenant: p.Tenant, Step: StepReverseDropped, Err: cause})
	m.cfg.Logger.Warn("cutover: the reverse stream was dropped; the move can no longer be reverted", "move", p.Move, "tenant", p.Tenant, "error", cause)
	return fmt.Errorf("%w: the reverse stream of move %q was dropped: %w", ErrNotRevertible, p.Move, cause)
}

// reverseWithinBound says, changing nothing, why the reverse of move p is
// past its bound (replica.ErrWALLimit, replica.ErrSlotLost), or another
// error when it cannot tell; nil when it is within.
func (m *Mover) reverseWithinBound(ctx context.Context, p plan, src, tgt fleet.Instance) error {
	rp, ok := m.cfg.Provider.(ReverseProvider)
	if !ok {
		return fmt.Errorf("%w: the Provider (%T) cannot run reverse streams", ErrNotRevertible, m.cfg.Provider)
	}
	retained, exists, err := rp.ReverseRetainedWAL(ctx, reverseOf(p, src.Admin, tgt.Admin))
	switch {
	case errors.Is(err, replica.ErrSlotLost):
		return fmt.Errorf("the target invalidated the reverse slot (it retained more than its max_slot_wal_keep_size): %w", err)
	case err != nil:
		return fmt.Errorf("read the reverse stream's retained WAL on %s: %w", tgt.ID, err)
	case !exists:
		return fmt.Errorf("%w: the reverse slot is gone from %s", replica.ErrSlotLost, tgt.ID)
	case m.cfg.MaxReverseWAL > 0 && retained > m.cfg.MaxReverseWAL:
		return fmt.Errorf("%w: %s retains %d bytes of WAL for the reverse stream, over Config.MaxReverseWAL (%d): the source copy on %s does not keep up, or is down",
			replica.ErrWALLimit, tgt.ID, retained, m.cfg.MaxReverseWAL, src.ID)
	}
	return nil
}
