package logical

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/internal/pgretry"
	"github.com/daisychain-db/daisychain/replica"
)

// Barrier implements replica.Stream: the position of a logical message
// written now, in a transaction of its own whose commit flushes the WAL,
// so the WAL sender sees it at once. It is written from the source's
// admin database, which a fence of the tenant database does not close;
// WAL positions are shared by all databases of a server. Where the
// message cannot be written (a read-only fence), it is the WAL insert
// position. Every transaction that committed before the call ends before
// it.
func (s *stream) Barrier(ctx context.Context) (replica.Position, error) {
	if _, err := s.state(); err != nil {
		return 0, err
	}
	var lsn string
	err := retry(ctx, 30*time.Second, func() error {
		return pgx.BeginFunc(ctx, s.adm, func(tx pgx.Tx) error {
			// The WAL sender sends only flushed WAL: flush at commit
			// even where the source's sessions commit asynchronously.
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = local"); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT pg_logical_emit_message(true, 'daisychain', $1)::text`, "barrier "+s.e.spec.ID).Scan(&lsn)
		})
	})
	if err != nil {
		err2 := retry(ctx, 30*time.Second, func() error {
			return s.adm.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn)
		})
		if err2 != nil {
			return 0, fmt.Errorf("logical: barrier: %w", errors.Join(err, err2))
		}
	}
	return replica.ParsePosition(lsn)
}

// WaitFor implements replica.Stream. The target has applied pos once
// every table has finished its initial copy, the indexes and constraints
// are built, and either
//
//   - the source's slot has the subscriber's confirmation that everything
//     up to pos is flushed (confirmed_flush_lsn >= pos), or
//   - the target's apply worker has received the stream beyond pos
//     (pg_stat_subscription.received_lsn > pos): it handles messages in
//     order, so every transaction that committed before pos is applied;
//     WaitFor then flushes the target's WAL (see flushTarget) and checks
//     that the worker did not restart meanwhile, which makes them
//     durable.
//
// The second way exists because the subscriber commits asynchronously and
// reports its flush position only when something wakes it, which can
// take a second when all is quiet after the fence. While it waits,
// WaitFor writes empty logical messages on the source, so the WAL sender
// keeps sending the subscriber its position.
//
// Once WaitFor has succeeded, the WAL guard is off for this handle: the
// cutover is in its window, and it finishes or aborts the stream.
func (s *stream) WaitFor(ctx context.Context, pos replica.Position) error {
	poll := pgretry.Poll(min(s.e.poll, 10*time.Millisecond), 100*time.Millisecond)
	var silentSince time.Time
	for {
		phase, err := s.state()
		if err != nil {
			return err
		}
		if phase == replica.PhaseStreaming {
			done, sending, err := s.applied(ctx, pos)
			if done {
				// The cutover is in its window: from now on only
				// Finish or Abort end the stream, never the guard.
				s.guardOff.Store(true)
				return nil
			}
			if err != nil && !transient(err) {
				return fmt.Errorf("logical: wait for %s: %w", pos, err)
			}
			switch {
			case err != nil:
			case sending:
				silentSince = time.Time{}
			case silentSince.IsZero():
				silentSince = time.Now()
			case time.Since(silentSince) > s.e.grace:
				return fmt.Errorf("logical: wait for %s: %w: no WAL sender has served slot %s for %s (Provider.SenderGrace): "+
					"the target cannot reach the source, or the source refuses it (a fence with ALLOW_CONNECTIONS false does, after the source restarted)",
					pos, replica.ErrNotStreaming, s.e.name, s.e.grace)
			}
			s.nudge(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("logical: wait for %s (phase %s): %w", pos, phase, ctx.Err())
		case <-time.After(poll.NextBackOff()):
		}
	}
}

// applied reports whether the target has durably applied pos (see
// WaitFor), and whether a WAL sender serves the stream's slot.
func (s *stream) applied(ctx context.Context, pos replica.Position) (done, sending bool, err error) {
	var confirmed, walStatus *string
	err = s.adm.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, wal_status, active_pid IS NOT NULL FROM pg_replication_slots WHERE slot_name = $1`,
		s.e.name).Scan(&confirmed, &walStatus, &sending)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, fmt.Errorf("%w: slot %s", replica.ErrSlotLost, s.e.name)
	}
	if err != nil {
		return false, false, err
	}
	if err := s.slotLost(walStatus); err != nil {
		return false, false, err
	}
	if confirmed != nil {
		if got, err := replica.ParsePosition(*confirmed); err == nil && got >= pos {
			return true, sending, nil
		}
	}
	worker := `SELECT pid, received_lsn::text FROM pg_stat_subscription WHERE subid = $1 AND relid IS NULL AND pid IS NOT NULL`
	if s.e.tgtMajor >= 16 {
		worker += ` AND leader_pid IS NULL` // not a parallel apply worker
	}
	var pid1, pid2 int
	var received, received2 *string
	if err := s.tgt.QueryRow(ctx, worker, s.m.SubOID).Scan(&pid1, &received); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, sending, nil // the apply worker is starting
		}
		return false, sending, err
	}
	if received == nil {
		return false, sending, nil
	}
	if got, err := replica.ParsePosition(*received); err != nil || got <= pos {
		return false, sending, err
	}
	if err := flushTarget(ctx, s.tgt); err != nil {
		return false, sending, err
	}
	if err := s.tgt.QueryRow(ctx, worker, s.m.SubOID).Scan(&pid2, &received2); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, sending, nil
		}
		return false, sending, err
	}
	return pid1 == pid2, sending, nil
}

// flushTarget makes durable every transaction the target committed
// before it, by committing a transaction that writes WAL (a transactional
// logical message, which no one on the target decodes) with
// synchronous_commit = local: its commit waits for the WAL to be flushed
// up to its commit record, which follows theirs. The apply worker
// commits with the subscription's synchronous_commit, off by default;
// the target may run every session with synchronous_commit off, hence
// the SET; and a transaction that writes no WAL (one that only takes an
// ID, txid_current()) commits without a flush whatever the setting.
func flushTarget(ctx context.Context, tgt *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, tgt, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = local"); err != nil {
			return err
		}
		var x any
		return tx.QueryRow(ctx, `SELECT pg_logical_emit_message(true, 'daisychain', 'flush')`).Scan(&x)
	})
}

// nudge writes an empty logical message on the source, after which the
// WAL sender sends the subscriber its new position (see WaitFor). Errors
// do not matter: the position comes anyway, only later.
func (s *stream) nudge(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var x any
	_ = s.adm.QueryRow(ctx, `SELECT pg_logical_emit_message(true, 'daisychain', 'nudge')::text`).Scan(&x)
}
