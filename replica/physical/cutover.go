package physical

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"

	"github.com/daisychain-db/daisychain/internal/pgretry"
	"github.com/daisychain-db/daisychain/internal/slotwal"
)

// Barrier implements replica.Conversion: the end of a logical message
// written now on the source's admin database, in a transaction of its own
// whose commit flushes the WAL. Every transaction that committed before
// the call has its commit record before it, and the replica reports the
// end of the last record it replayed, so replayed >= barrier means all of
// them are on the replica. The message works at wal_level replica too.
//
// Where the message cannot be written (a role that may not, or a source
// made read-only), it is the WAL insert position, moved back over a page
// header when it sits just after one: the insert position then points
// past the header while the last record ends at the page boundary, which
// is what the replica reports.
func (cv *Conversion) Barrier(ctx context.Context) (replica.Position, error) {
	if phase, _, err := cv.state(); err != nil || phase == replica.PhasePromoted {
		if err == nil {
			err = fmt.Errorf("%w (promoted)", replica.ErrClosed)
		}
		return 0, err
	}
	var pos replica.Position
	err := retry(ctx, 30*time.Second, func() error {
		conn, err := cv.e.src.connect(ctx)
		if err != nil {
			return err
		}
		defer closeConn(conn)
		var lsn string
		msgErr := conn.QueryRow(ctx, `SELECT pg_logical_emit_message(true, 'daisychain', $1)::text`, "barrier "+cv.e.slot).Scan(&lsn)
		if msgErr == nil {
			pos, err = replica.ParsePosition(lsn)
			return err
		}
		var block, segment int64
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::int8,
			(SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size')`).Scan(&lsn, &block, &segment); err != nil {
			return errors.Join(msgErr, err)
		}
		insert, err := replica.ParsePosition(lsn)
		pos = endOfLastRecord(insert, block, segment)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("physical: %s: barrier: %w", cv.e.spec, err)
	}
	return pos, nil
}

// WAL page header sizes (MAXALIGNed XLogPageHeaderData and
// XLogLongPageHeaderData on 64-bit platforms).
const (
	shortPageHeader = 24
	longPageHeader  = 40
)

// endOfLastRecord maps the WAL insert position to the end of the last
// record inserted: the same unless the position sits right after a page
// header, since no record ends there.
func endOfLastRecord(insert replica.Position, block, segment int64) replica.Position {
	switch {
	case segment > 0 && int64(insert)%segment == longPageHeader:
		return insert - longPageHeader
	case block > 0 && int64(insert)%block == shortPageHeader:
		return insert - shortPageHeader
	}
	return insert
}

// WaitFor implements replica.Conversion: it returns once the replica's
// pg_last_wal_replay_lsn() has reached pos. A standby replays only WAL its
// WAL receiver has flushed, so what is replayed is durable. While the copy
// runs it waits for the copy. Every few seconds it checks that the slot
// still exists on the source (replica.ErrSlotLost otherwise).
func (cv *Conversion) WaitFor(ctx context.Context, pos replica.Position) error {
	// From 5 ms, doubling, to the poll interval, for as long as it waits.
	poll := pgretry.Poll(min(cv.poll, 5*time.Millisecond), cv.poll)
	var conn *pgx.Conn
	defer func() { closeConn(conn) }()
	lastSlotCheck := time.Now()
	for {
		phase, _, err := cv.state()
		if err != nil {
			return err
		}
		switch phase {
		case replica.PhasePromoted:
			cv.mu.Lock()
			at := cv.promotedAt
			cv.mu.Unlock()
			if pos <= at {
				return nil
			}
			return fmt.Errorf("physical: %s: wait for %s: %w: promoted at %s", cv.e.spec, pos, replica.ErrClosed, at)
		case replica.PhaseStreaming:
			if conn == nil {
				if conn, err = cv.connectReplica(ctx); err != nil && !pgretry.Transient(err) {
					return fmt.Errorf("physical: %s: wait for %s: %w", cv.e.spec, pos, err)
				}
			}
			if conn != nil {
				got, err := cv.replayed(ctx, conn)
				switch {
				case err == nil && got >= pos:
					cv.mu.Lock()
					cv.waited = true
					cv.mu.Unlock()
					return nil
				case err != nil && !pgretry.Transient(err):
					return fmt.Errorf("physical: %s: wait for %s: %w", cv.e.spec, pos, err)
				case err != nil:
					closeConn(conn)
					conn = nil
				}
			}
			if time.Since(lastSlotCheck) > 3*time.Second {
				if err := cv.checkSlot(ctx); err != nil {
					return fmt.Errorf("physical: %s: wait for %s: %w", cv.e.spec, pos, err)
				}
				lastSlotCheck = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("physical: %s: wait for %s (phase %s): %w", cv.e.spec, pos, phase, ctx.Err())
		case <-time.After(poll.NextBackOff()):
		}
	}
}

func (cv *Conversion) checkSlot(ctx context.Context) error {
	conn, err := cv.e.src.connect(ctx)
	if err != nil {
		return nil // the source may be away for a moment; the wait goes on
	}
	defer closeConn(conn)
	var walStatus *string
	err = conn.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, cv.e.slot).Scan(&walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: slot %s is gone from the source: the replica may miss WAL; Abort and start again", replica.ErrSlotLost, cv.e.slot)
	}
	if err != nil {
		return nil
	}
	return slotLost(cv.e.slot, walStatus)
}

// slotLost is slotwal.Lost for the conversion's slot.
func slotLost(slot string, walStatus *string) error { return slotwal.Lost(slot, "replica", walStatus) }

// Promote implements replica.Conversion: pg_promote(wait => true) on the
// replica, then primary_conninfo (which holds the source's password) and
// primary_slot_name are removed from its postgresql.auto.conf, and the
// slot is dropped on the source. Promote again after a failure does what
// is left.
func (cv *Conversion) Promote(ctx context.Context) error {
	cv.opMu.Lock()
	defer cv.opMu.Unlock()
	phase, _, err := cv.state()
	if err != nil {
		return err
	}
	cv.mu.Lock()
	waited := cv.waited
	cv.mu.Unlock()
	switch {
	case phase == replica.PhaseCopy:
		return fmt.Errorf("physical: promote %s: %w: the base backup is still running", cv.e.spec, replica.ErrNotReady)
	case phase == replica.PhaseStreaming && !waited:
		return fmt.Errorf("physical: promote %s: %w: fence the source, then WaitFor(Barrier()) before Promote", cv.e.spec, replica.ErrNotReady)
	case phase == replica.PhaseStreaming:
		if err := cv.promote(ctx); err != nil {
			return fmt.Errorf("physical: promote %s: %w", cv.e.spec, err)
		}
	}
	if err := cv.e.src.dropSlot(ctx, cv.e.slot); err != nil {
		return fmt.Errorf("physical: promote %s: promoted, but: %w", cv.e.spec, err)
	}
	cv.e.log.Info("physical: replica promoted", "endpoint", cv.Endpoint())
	return nil
}

func (cv *Conversion) promote(ctx context.Context) error {
	conn, err := cv.connectReplica(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	var inRecovery bool
	var replayed *string
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text`).Scan(&inRecovery, &replayed); err != nil {
		return err
	}
	if inRecovery {
		var promoted bool
		if err := conn.QueryRow(ctx, `SELECT pg_promote(true, 60)`).Scan(&promoted); err != nil {
			return fmt.Errorf("pg_promote: %w", err)
		}
		if !promoted {
			return errors.New("pg_promote: the replica did not finish promotion within 60 s; see its log")
		}
	}
	for _, q := range []string{`ALTER SYSTEM RESET primary_conninfo`, `ALTER SYSTEM RESET primary_slot_name`, `SELECT pg_reload_conf()`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s on the promoted replica: %w", q, err)
		}
	}
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if replayed != nil {
		if at, err := replica.ParsePosition(*replayed); err == nil {
			cv.promotedAt = at
		}
	}
	cv.phase = replica.PhasePromoted
	return nil
}
