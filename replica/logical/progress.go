package logical

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// sample is a byte count at a time, for a rate.
type sample struct {
	at    time.Time
	bytes int64
}

// Progress implements replica.Stream.
// A query that fails for a reason that may pass (a restarting source or
// target) is tried again, for up to progressRetryFor; a caller's
// cancellation is reported as such (errors.Is(err, context.Canceled)).
func (s *stream) Progress(ctx context.Context) (replica.Progress, error) {
	var p replica.Progress
	err := retry(ctx, progressRetryFor, func() (err error) {
		p, err = s.progress(ctx)
		return err
	})
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return p, err
}

// progressRetryFor bounds how long Progress tries again.
const progressRetryFor = 30 * time.Second

// progress is one try of Progress.
func (s *stream) progress(ctx context.Context) (replica.Progress, error) {
	phase, err := s.state()
	p := replica.Progress{Phase: phase, Elapsed: time.Since(s.started), Err: err, Phases: s.timedPhases()}
	if errors.Is(err, replica.ErrClosed) {
		return p, err
	}
	if err != nil {
		return p, nil
	}
	// Tables and bytes: the stream's own copy knows them while it runs;
	// else the subscription's tables (all ready once the copy is done).
	// After the copy, until the subscription exists (keys are built
	// first), the copy's figures are the stream's: its tables and bytes,
	// all copied.
	var own *copyState
	if st := s.ownCopy(); st != nil && (phase == replica.PhaseCopy || st.finished) {
		own = st
		p.TablesTotal, p.TablesDone, p.BytesTotal, p.BytesCopied = st.total, len(st.done), st.bytes, min(st.copied, st.bytes)
		p.RowsCopied = st.rows
		if st.finished {
			p.TablesDone, p.BytesCopied = st.total, st.bytes
		}
	} else if err := s.subscriptionProgress(ctx, &p); err != nil {
		return p, err
	}
	var lag, retained *int64
	var walStatus *string
	err = s.adm.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8, (pg_current_wal_lsn() - restart_lsn)::int8, wal_status
		FROM pg_replication_slots WHERE slot_name = $1`, s.e.name).Scan(&lag, &retained, &walStatus)
	if errors.Is(err, pgx.ErrNoRows) && own != nil && !own.slotMade {
		// The copy is creating the slot (see Blockers), or starting over.
		if b, err := s.slotBlockers(ctx); err == nil {
			p.Blockers = b
		}
		return p, nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("%w: slot %s", replica.ErrSlotLost, s.e.name)
	}
	if err != nil {
		return p, fmt.Errorf("logical: progress: %w", err)
	}
	if phase == replica.PhaseCopy && (p.TablesDone < p.TablesTotal || own != nil && !own.planned) {
		// Best effort: the copy's progress matters more than why it waits.
		if b, err := s.slotBlockers(ctx); err == nil {
			p.Blockers = b
		}
	}
	if lostErr := s.slotLost(walStatus); lostErr != nil && !s.guardOff.Load() { // in the window, the target has everything it needs
		p.Err = s.fail(lostErr)
		return p, nil
	}
	if lag != nil {
		p.LagBytes = max(*lag, 0)
	}
	if retained != nil {
		p.RetainedWALBytes = *retained
	}
	_ = s.tgt.QueryRow(ctx, `SELECT (apply_error_count + sync_error_count)::int8 FROM pg_stat_subscription_stats
		WHERE subid = $1`, s.m.SubOID).Scan(&p.ApplyErrors)

	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.TablesDone < p.TablesTotal {
		if s.copy0.at.IsZero() {
			s.copy0 = sample{now, p.BytesCopied}
		} else if dt := now.Sub(s.copy0.at); dt > 0 && p.BytesCopied > s.copy0.bytes {
			rate := float64(p.BytesCopied-s.copy0.bytes) / dt.Seconds()
			p.CopyETA = time.Duration(float64(p.BytesTotal-p.BytesCopied) / rate * float64(time.Second))
		}
	}
	if p.LagBytes == 0 {
		s.catchETA = 0
	} else if !s.lagPrev.at.IsZero() {
		if dt := now.Sub(s.lagPrev.at); dt > 0 && s.lagPrev.bytes > p.LagBytes {
			rate := float64(s.lagPrev.bytes-p.LagBytes) / dt.Seconds()
			s.catchETA = time.Duration(float64(p.LagBytes) / rate * float64(time.Second))
		}
	}
	p.CatchUpETA = s.catchETA
	s.lagPrev = sample{now, p.LagBytes}
	return p, nil
}

// ownCopy is the state of the copy this process ran, if any.
func (s *stream) ownCopy() *copyState {
	if s.copy == nil {
		return nil
	}
	st := s.copy.state()
	return &st
}

// subscriptionProgress fills p's tables and bytes from the subscription's
// tables: the target knows each table's copy state, the source its size.
func (s *stream) subscriptionProgress(ctx context.Context, p *replica.Progress) error {
	rows, err := s.tgt.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), sr.srsubstate::text,
			pg_relation_size(c.oid)
		FROM pg_subscription_rel sr JOIN pg_class c ON c.oid = sr.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE sr.srsubid = $1`, s.m.SubOID)
	if err != nil {
		return fmt.Errorf("logical: progress: %w", err)
	}
	type tbl struct {
		name, state string
		size        int64
	}
	var tables []tbl
	var names []string
	for rows.Next() {
		var t tbl
		if err := rows.Scan(&t.name, &t.state, &t.size); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
		names = append(names, t.name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("logical: progress: %w", err)
	}
	// The sizes come from the tenant database; while it refuses
	// connections (a fence), the last ones known do.
	srcSizes := map[string]int64{}
	rows, err = s.src.Query(ctx, `SELECT name, coalesce(pg_relation_size(to_regclass(name)), 0) FROM unnest($1::text[]) name`, names)
	if err == nil {
		for rows.Next() {
			var n string
			var sz int64
			if err = rows.Scan(&n, &sz); err != nil {
				break
			}
			srcSizes[n] = sz
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	s.mu.Lock()
	if err == nil {
		s.srcSizes = srcSizes
	} else {
		srcSizes = s.srcSizes
	}
	s.mu.Unlock()
	p.TablesTotal = len(tables)
	for _, t := range tables {
		total := srcSizes[t.name]
		p.BytesTotal += total
		if t.state == "r" || t.state == "s" {
			p.TablesDone++
			p.BytesCopied += total
		} else {
			p.BytesCopied += min(t.size, total)
		}
	}
	return nil
}
