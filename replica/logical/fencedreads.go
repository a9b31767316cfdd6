package logical

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// FencePIDs returns the backend PIDs on the source server that the
// stream needs to survive a fence of its database: its held connection
// to the tenant database (WAL sender mode, see doc.go) and the WAL
// senders serving its slot and its subscription's table-sync slots. A
// fence that ends every session of the database spares these. It is an
// optional capability of the stream, found by type assertion:
//
//	interface{ FencePIDs(ctx context.Context) ([]uint32, error) }
//
// A WAL sender restarts under another PID when its subscriber
// reconnects, so call it right before ending sessions. The held
// connection is left out while it is broken. From this call on, the
// stream reads the source through its held connection first (see
// readSource): the fence about to go up ends the pool's sessions, and
// trying them inside the window would cost a failed query and a refused
// connection each time.
func (s *stream) FencePIDs(ctx context.Context) ([]uint32, error) {
	if _, err := s.state(); err != nil {
		return nil, err
	}
	s.fencing.Store(true)
	var pids []uint32
	s.heldMu.Lock()
	if s.held != nil && !s.held.IsClosed() {
		pids = append(pids, s.held.PgConn().PID())
	}
	s.heldMu.Unlock()
	rows, err := s.adm.Query(ctx, `SELECT active_pid::int8 FROM pg_replication_slots
		WHERE (slot_name = $1 OR slot_name LIKE $2) AND active_pid IS NOT NULL`, s.e.name, syncSlotPattern(s.m.SubOID, s.m.TargetSystem))
	senders, err := collectErr[int64](rows, err)
	if err != nil {
		return nil, fmt.Errorf("logical: fence PIDs: %w", err)
	}
	for _, p := range senders {
		pids = append(pids, uint32(p))
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

// readSource runs fn against the source tenant database: through the
// pool, several queries at once (parallel), or, when the database refuses
// connections or ended them (a fence), through the held WAL sender
// connection, one query at a time. Once a fence is announced (FencePIDs),
// the held connection comes first, the pool only if it is gone. fn must
// be repeatable.
func (s *stream) readSource(ctx context.Context, fn func(q querier, parallel int) error) error {
	if s.fencing.Load() {
		s.heldMu.Lock()
		if s.held != nil && !s.held.IsClosed() {
			defer s.heldMu.Unlock()
			return fn(s.held, 1)
		}
		s.heldMu.Unlock()
	}
	err := fn(s.src, 4)
	if err == nil || ctx.Err() != nil || !(transient(err) || sqlState(err) == "55000") {
		return err
	}
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.held == nil || s.held.IsClosed() {
		return fmt.Errorf("%w (the stream's WAL sender connection to the source is gone too)", err)
	}
	s.e.log.Debug("logical: reading the source through the WAL sender connection", "because", err)
	return fn(s.held, 1)
}

// keepHeld reopens the held connection when it broke (a restarted
// source); while the tenant database refuses connections it stays nil.
func (s *stream) keepHeld(ctx context.Context) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.held != nil && !s.held.IsClosed() {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var one int
		err := s.held.QueryRow(pctx, "SELECT 1").Scan(&one)
		cancel()
		if err == nil {
			return
		}
	}
	closeConn(s.held)
	s.held = nil
	if conn, err := s.e.connectHeld(ctx); err == nil {
		s.held = conn
	}
}
