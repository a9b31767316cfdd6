package physical

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
)

// Conversion is one local replica: a base backup in progress, then a
// streaming standby, then (after Promote) an independent primary. It
// implements replica.Conversion; its methods are safe for concurrent use.
type Conversion struct {
	conv       *Converter
	e          *env
	replicaCfg localpg.Config
	poll       time.Duration
	maxRate    string
	spread     bool
	started    time.Time

	cancelCopy context.CancelFunc
	copyDone   chan struct{} // closed when the background copy has ended

	// opMu serializes Promote and Abort.
	opMu sync.Mutex

	mu         sync.Mutex
	phase      replica.Phase
	inst       *localpg.Instance // set when the copy is done
	copyErr    error             // what stopped the copy
	copied     int64             // last bytes streamed by the base backup
	total      int64             // its estimate of the whole
	waited     bool              // WaitFor succeeded: Promote may go ahead
	promotedAt replica.Position  // replay position when promoted
}

var _ replica.Conversion = (*Conversion)(nil)

func newConversion(c *Converter, e *env, cfg localpg.Config) *Conversion {
	// The copy outlives Start's ctx; Abort cancels it.
	ctx, cancel := context.WithCancel(context.Background())
	cv := &Conversion{
		conv: c, e: e, replicaCfg: cfg, poll: c.PollInterval, maxRate: c.MaxRate, spread: c.SpreadCheckpoint,
		started: time.Now(), cancelCopy: cancel, copyDone: make(chan struct{}), phase: replica.PhaseCopy,
	}
	if cv.poll <= 0 {
		cv.poll = PollIntervalDefault
	}
	go cv.copy(ctx)
	return cv
}

// ID implements replica.Conversion.
func (cv *Conversion) ID() string { return cv.e.spec.ID }

// SlotName is the physical replication slot the conversion keeps on the
// source until Promote or Abort.
func (cv *Conversion) SlotName() string { return cv.e.slot }

// LocalInstance is the local server process behind the replica, nil
// until the copy is done: an extra of this package's Conversion, which
// replica.Conversion does not have. A cutover needs only Endpoint and
// AdminConnString; LocalInstance is for the caller that owns the
// process: Abort closes it, but after Promote it is the caller's, a
// child of this process (see localpg) that its Close stops and removes.
func (cv *Conversion) LocalInstance() *localpg.Instance {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	return cv.inst
}

// Endpoint implements replica.Conversion.
func (cv *Conversion) Endpoint() fleet.Endpoint {
	inst := cv.LocalInstance()
	if inst == nil {
		return fleet.Endpoint{}
	}
	return fleet.Endpoint{Host: localpg.Host, Port: inst.Port()}
}

// AdminConnString implements replica.Conversion: the source's admin role,
// password and database, at the replica's address.
func (cv *Conversion) AdminConnString() string {
	inst := cv.LocalInstance()
	if inst == nil {
		return ""
	}
	return inst.ConnStringAs(cv.e.src.cfg.User, cv.e.src.password, cv.e.src.cfg.Database)
}

func (cv *Conversion) state() (replica.Phase, *localpg.Instance, error) {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if cv.phase == replica.PhaseAborted {
		return cv.phase, nil, fmt.Errorf("physical: %s: %w (aborted)", cv.e.spec, replica.ErrClosed)
	}
	return cv.phase, cv.inst, cv.copyErr
}

func (cv *Conversion) connectReplica(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, cv.AdminConnString())
	if err != nil {
		return nil, fmt.Errorf("connect to the replica at %s: %w", cv.Endpoint(), err)
	}
	return conn, nil
}

// Progress implements replica.Conversion. While copying, BytesCopied and
// BytesTotal come from the source's pg_stat_progress_basebackup; after,
// LagBytes is the source's current WAL position minus the replica's
// replay position.
func (cv *Conversion) Progress(ctx context.Context) (replica.Progress, error) {
	phase, _, err := cv.state()
	if err != nil && phase == replica.PhaseAborted {
		return replica.Progress{}, err
	}
	p := replica.Progress{Phase: phase, Elapsed: time.Since(cv.started), Err: err}
	if err != nil {
		return p, nil
	}
	switch phase {
	case replica.PhaseCopy:
		if err := cv.copyProgress(ctx, &p); err != nil {
			return p, fmt.Errorf("physical: %s: progress: %w", cv.e.spec, err)
		}
	case replica.PhaseStreaming:
		if err := cv.lag(ctx, &p); err != nil {
			return p, fmt.Errorf("physical: %s: progress: %w", cv.e.spec, err)
		}
	case replica.PhasePromoted:
		cv.mu.Lock()
		p.BytesCopied, p.BytesTotal = cv.copied, cv.total
		cv.mu.Unlock()
	}
	return p, nil
}

func (cv *Conversion) copyProgress(ctx context.Context, p *replica.Progress) error {
	conn, err := cv.e.src.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	var copied, total int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(p.backup_streamed), 0)::int8, coalesce(sum(p.backup_total), 0)::int8
		FROM pg_stat_progress_basebackup p JOIN pg_stat_activity a USING (pid)
		WHERE a.application_name = $1`, cv.e.slot).Scan(&copied, &total); err != nil {
		return err
	}
	cv.mu.Lock()
	defer cv.mu.Unlock()
	// The row goes away when the backup's files are sent; keep the last.
	if copied > cv.copied {
		cv.copied = copied
	}
	if total > cv.total {
		cv.total = total
	}
	p.BytesCopied, p.BytesTotal = cv.copied, cv.total
	if p.BytesCopied > 0 && p.BytesTotal > p.BytesCopied {
		rate := float64(p.BytesCopied) / p.Elapsed.Seconds()
		p.CopyETA = time.Duration(float64(p.BytesTotal-p.BytesCopied) / rate * float64(time.Second))
	}
	return nil
}

func (cv *Conversion) lag(ctx context.Context, p *replica.Progress) error {
	src, err := cv.e.src.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(src)
	var current replica.Position
	var restart *replica.Position
	var s string
	var r, walStatus *string
	err = src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text,
		(SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1),
		(SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1)`, cv.e.slot).Scan(&s, &r, &walStatus)
	if err != nil {
		return err
	}
	if err := slotLost(cv.e.slot, walStatus); err != nil {
		p.Err = err
		return nil
	}
	if current, err = replica.ParsePosition(s); err != nil {
		return err
	}
	if r != nil {
		pos, err := replica.ParsePosition(*r)
		if err != nil {
			return err
		}
		restart = &pos
	}
	replayed, err := cv.replayed(ctx, nil)
	if err != nil {
		return err
	}
	cv.mu.Lock()
	p.BytesCopied, p.BytesTotal = cv.copied, cv.total
	cv.mu.Unlock()
	if current > replayed {
		p.LagBytes = int64(current - replayed)
	}
	if restart != nil && current > *restart {
		p.RetainedWALBytes = int64(current - *restart)
	}
	return nil
}

// replayed is the replica's replay position, on conn or a connection of
// its own when conn is nil.
func (cv *Conversion) replayed(ctx context.Context, conn *pgx.Conn) (replica.Position, error) {
	if conn == nil {
		c, err := cv.connectReplica(ctx)
		if err != nil {
			return 0, err
		}
		defer closeConn(c)
		conn = c
	}
	var s *string
	if err := conn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text`).Scan(&s); err != nil {
		return 0, err
	}
	if s == nil {
		return 0, errors.New("the replica is not in recovery: it was promoted by someone else")
	}
	return replica.ParsePosition(*s)
}

// Abort implements replica.Conversion: it stops the base backup or the
// replica, removes the replica's directory and drops the slot on the
// source. A promoted replica is a primary that may have taken writes:
// Abort refuses it (close LocalInstance yourself).
func (cv *Conversion) Abort(ctx context.Context) error {
	cv.cancelCopy()
	<-cv.copyDone
	cv.opMu.Lock()
	defer cv.opMu.Unlock()
	cv.mu.Lock()
	phase, inst := cv.phase, cv.inst
	cv.mu.Unlock()
	if phase == replica.PhasePromoted {
		return fmt.Errorf("physical: abort %s: %w: the replica was promoted and may hold writes; close its LocalInstance to remove it",
			cv.e.spec, replica.ErrClosed)
	}
	var errs []error
	if inst != nil {
		errs = append(errs, inst.Close())
	}
	errs = append(errs, cv.e.src.dropSlot(ctx, cv.e.slot))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("physical: abort %s: %w", cv.e.spec, err)
	}
	cv.mu.Lock()
	cv.phase = replica.PhaseAborted
	cv.mu.Unlock()
	cv.conv.forget(cv)
	cv.e.log.Info("physical: conversion aborted")
	return nil
}
