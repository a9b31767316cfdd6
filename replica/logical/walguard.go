package logical

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/internal/slotwal"
	"github.com/daisychain-db/daisychain/replica"
)

// guard stops the stream when the source retains too much WAL for it:
// it stops the work (stopWork), then the replication (stopReplication),
// and reports whether it did. It is off once WaitFor succeeded.
func (s *stream) guard(ctx context.Context, stopWork func()) bool {
	if s.guardOff.Load() {
		return false
	}
	var retained *int64
	var walStatus *string
	err := s.adm.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - restart_lsn)::int8, wal_status FROM pg_replication_slots
		WHERE slot_name = $1`, s.e.name).Scan(&retained, &walStatus)
	if lostErr := s.slotLost(walStatus); err == nil && lostErr != nil {
		// Nothing to protect any more; what is left is Abort's.
		s.fail(lostErr)
		stopWork()
		return true
	}
	if s.e.maxWAL <= 0 || err != nil || retained == nil || *retained < s.e.maxWAL/10*9 {
		return false
	}
	werr := fmt.Errorf("%w: the source retains %d bytes of WAL for stream %q, close to the limit of %d (Options.MaxRetainedWAL): the target does not keep up or is stalled (see its log)",
		replica.ErrWALLimit, *retained, s.e.spec.ID, s.e.maxWAL)
	s.e.log.Error("logical: WAL guard", "err", werr)
	s.mu.Lock()
	s.bgErr = werr
	s.mu.Unlock()
	stopWork()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.stopReplication(cctx); err != nil {
		s.mu.Lock()
		s.bgErr = errors.Join(werr, fmt.Errorf("drop the subscription and slots: %w", err))
		s.mu.Unlock()
	}
	s.setPhase(replica.PhaseAborted)
	return true
}

// slotLost is slotwal.Lost for the stream's slot.
func (s *stream) slotLost(walStatus *string) error {
	return slotwal.Lost(s.e.name, "stream", walStatus)
}

// stopReplication is the guard's abort; a reverse's drops its
// subscription, slot and publication, and nothing else. A stream's marks
// it aborted in
// the target's marker, then drops the subscription, the slots (which
// frees the source's WAL) and the publication. The target database, and
// its marker, stay: the guard never drops a database, which could be the
// one the cutover just switched to. Abort drops it (when the stream
// created it); Start refuses the stream. The slots go even when the
// target cannot be reached (a target that is down is one reason WAL
// piles up): protecting the source comes first, and Abort drops the
// subscription later.
func (s *stream) stopReplication(ctx context.Context) error {
	if s.e.reverse {
		return s.e.cleanupReverse(ctx, s.heldConn())
	}
	s.mu.Lock()
	s.m.Phase = markAborted
	s.mu.Unlock()
	var errs []error
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second) // the target's part, bounded
	if err := s.e.writeMarker(tctx, s.m); err != nil {
		errs = append(errs, fmt.Errorf("mark the stream aborted on the target: %w", err))
	}
	subOID := s.m.SubOID
	if err := retry(tctx, 15*time.Second, func() error { return s.e.dropSubscription(tctx, &subOID) }); err != nil {
		errs = append(errs, fmt.Errorf("drop subscription: %w", err))
	}
	cancel()
	// This handle made the slot and the publication (it got past
	// createReplication), and knows the subscription.
	own := owned{slot: true, publication: true, subOID: subOID, targetSystem: s.m.TargetSystem}
	errs = append(errs, s.e.dropSourceObjects(ctx, own, s.heldConn()))
	return errors.Join(errs...)
}
