package cutover

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Abandoned reports whether a move or a conversion is open in the
// journal with no mover running it: its locks are free, so the process
// that ran it died (its lock session ended with it) and Resume may take
// it up now rather than wait for whoever would have retried it. It
// changes nothing: it looks at the locks (a LockInspector journal, in one
// query on the journal's pool), or takes them and lets go at once.
//
// An ID the journal does not have is not abandoned (nothing started). A
// journal that is over is not either. A run that journaled nothing but
// its first entry before its plan cannot be told from one about to take
// its locks, so it is reported as not abandoned.
//
// With a journal that holds no locks (not a Locker), nothing can be
// told, and Abandoned returns false.
func (m *Mover) Abandoned(ctx context.Context, moveID string) (bool, error) {
	if _, ok := m.cfg.Journal.(Locker); !ok {
		return false, nil
	}
	entries, err := m.moveEntries(ctx, moveID)
	if errors.Is(err, ErrMoveNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if entries[len(entries)-1].Terminal() {
		return false, nil
	}
	p, found, err := journaledPlan(moveID, entries)
	if err != nil || !found {
		return false, err
	}
	if free, err := m.locksFree(ctx, p); err != nil || !free {
		return false, err
	}
	// Read again: its mover may have ended it and let go of its locks
	// between the first read and the look at them.
	if entries, err = m.cfg.Journal.Entries(ctx, moveID); err != nil {
		return false, err
	}
	return !entries[len(entries)-1].Terminal(), nil
}

// locksFree reports whether no one holds the run's locks: by looking, if
// the journal can (LockInspector), else by taking them and letting go.
func (m *Mover) locksFree(ctx context.Context, p plan) (bool, error) {
	locks := p.locks(0, 0)
	if li, ok := m.cfg.Journal.(LockInspector); ok {
		held, err := li.Held(ctx, locks...)
		if err != nil {
			return false, fmt.Errorf("cutover: is %q abandoned: %w", p.Move, err)
		}
		return !slices.Contains(held, true), nil
	}
	taken, err := TryLock(ctx, m.cfg.Journal, p.holder()+" (checking it is abandoned)", locks...)
	var conflict *LockConflictError
	if errors.As(err, &conflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cutover: is %q abandoned: %w", p.Move, err)
	}
	taken.Release()
	return true, nil
}
