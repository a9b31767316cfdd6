package cutover

import (
	"context"
	"errors"
	"fmt"
)

// Abandoned reports whether a move or a conversion is open in the
// journal with no mover running it: its locks are free, so the process
// that ran it died (its lock session ended with it) and Resume may take
// it up now rather than wait for whoever would have retried it. It
// changes nothing: the locks are taken and let go at once.
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
	held, err := TryLock(ctx, m.cfg.Journal, p.holder()+" (checking it is abandoned)", p.locks(0, 0)...)
	var conflict *LockConflictError
	if errors.As(err, &conflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cutover: is %q abandoned: %w", moveID, err)
	}
	defer held.Release()
	// Read again under the locks: its mover may have ended it and let go
	// of them between the read and the lock.
	if entries, err = m.cfg.Journal.Entries(ctx, moveID); err != nil {
		return false, err
	}
	return !entries[len(entries)-1].Terminal(), nil
}
