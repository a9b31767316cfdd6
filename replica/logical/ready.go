package logical

import (
	"context"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/internal/pgretry"
	"github.com/daisychain-db/daisychain/replica"
)

// Ready returns once the stream is connected end to end: a WAL sender
// on the source streams its slot to its subscription, the target's apply
// worker runs, and its held connection to the source tenant database is
// open (reopened if the source restarted). A cutover calls it right
// before it fences the source: a fence that refuses connections
// (ALLOW_CONNECTIONS false) also refuses the stream's own reconnection,
// so the stream must be connected before it goes up. It fails with
// replica.ErrNotStreaming, naming what is missing, after
// Provider.ReadyTimeout, and with ctx's error when ctx ends first;
// replica.ErrNotReady before the initial copy is done. It is an optional
// capability of the stream, found by type assertion:
//
//	interface{ Ready(ctx context.Context) error }
func (s *stream) Ready(ctx context.Context) error {
	phase, err := s.state()
	if err != nil {
		return err
	}
	if phase != replica.PhaseStreaming {
		return fmt.Errorf("logical: ready: %w (phase %s)", replica.ErrNotReady, phase)
	}
	rctx, cancel := context.WithTimeout(ctx, s.e.ready)
	defer cancel()
	poll := pgretry.Poll(10*time.Millisecond, 500*time.Millisecond)
	for {
		missing := s.missingConnection(rctx)
		if missing == "" {
			return nil
		}
		select {
		case <-rctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("logical: ready: %s: %w", missing, ctx.Err())
			}
			return fmt.Errorf("logical: ready: %w after %s (Provider.ReadyTimeout): %s", replica.ErrNotStreaming, s.e.ready, missing)
		case <-time.After(poll.NextBackOff()):
		}
	}
}

// missingConnection says what of the stream's connection is missing, or
// "" when nothing is.
func (s *stream) missingConnection(ctx context.Context) string {
	var streaming bool
	err := s.adm.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots sl JOIN pg_stat_replication r ON r.pid = sl.active_pid
		WHERE sl.slot_name = $1 AND r.application_name = $1 AND r.state = 'streaming')`, s.e.name).Scan(&streaming)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot read the source's replication state: %v", err)
	case !streaming:
		return fmt.Sprintf("no WAL sender on the source streams slot %s to the subscription", s.e.name)
	}
	var workers int
	if err := s.tgt.QueryRow(ctx, `SELECT count(*) FROM pg_stat_subscription WHERE subid = $1 AND relid IS NULL AND pid IS NOT NULL`,
		s.m.SubOID).Scan(&workers); err != nil {
		return fmt.Sprintf("cannot read the target's subscription state: %v", err)
	}
	if workers == 0 {
		return fmt.Sprintf("the apply worker of subscription %s does not run on the target", s.e.name)
	}
	s.keepHeld(ctx)
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.held == nil || s.held.IsClosed() {
		return fmt.Sprintf("the stream's WAL sender connection to source database %q cannot be opened", s.e.spec.SourceDatabase)
	}
	return ""
}

// heldApplicationName is the application_name of the held connection.
func heldApplicationName(name string) string { return "daisychain " + name }
