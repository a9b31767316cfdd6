package logical

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/replica"
)

// stream is a replica.Stream over one publication, slot and
// subscription.
type stream struct {
	e   *env
	src *pgxpool.Pool // source tenant database
	tgt *pgxpool.Pool // target tenant database
	adm *pgxpool.Pool // source admin database: slot state, barrier

	// held is a connection to the source tenant database in WAL sender
	// mode (replication=database), kept open from Start on. A database
	// fence that refuses connections and ends client sessions leaves WAL
	// senders running, so SyncSequences, Verify, CheckSchema and Finish
	// read (and drop the publication) through it while the source is
	// fenced. Guarded by heldMu; nil when broken.
	heldMu  sync.Mutex
	held    *pgx.Conn
	started time.Time
	// fencing is set once FencePIDs was asked: a fence is about to end
	// the pool's sessions, so the source is read through held first.
	fencing atomic.Bool

	// snap is the target's snapshot SnapshotTarget holds; nil when none.
	snapMu sync.Mutex
	snap   *targetSnapshot

	dumpDir, dumpFile, firstList string
	post                         []postItem // post-data objects, built after the copy
	postDone                     []bool     // (only the background work touches these, under postMu)
	batches                      int
	// postMu keeps a copy that starts over (resetTarget) and a post-data
	// restore apart; postStale says the copy started over, so every
	// post-data object is to be built again.
	postMu    sync.Mutex
	postStale bool

	// copy is the stream's own initial copy while it runs (marker
	// OwnCopy, phase copy); nil otherwise.
	copy *copier

	cancel context.CancelFunc
	bgDone chan struct{}
	// guardOff is set once WaitFor succeeded: the cutover is in its
	// window, and the stream ends by its Finish or Abort.
	guardOff atomic.Bool

	// opMu serializes Finish, Abort, Close and the guard's abort. Take it
	// only after stopBackground: the guard takes it before it exits.
	opMu sync.Mutex

	mu    sync.Mutex
	m     *marker
	phase replica.Phase
	// phaseAt is when phase began; phases are those that ended, timed.
	phaseAt time.Time
	phases  []replica.PhaseTiming
	bgErr   error // what stopped the stream in the background
	closed  bool
	// progress estimates
	copy0    sample // first copy sample of this handle
	lagPrev  sample
	catchETA time.Duration
	srcSizes map[string]int64
}

var _ replica.Stream = (*stream)(nil)

func (s *stream) ID() string { return s.e.spec.ID }

func (s *stream) state() (replica.Phase, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bgErr != nil {
		return s.phase, s.bgErr
	}
	if s.closed {
		return s.phase, fmt.Errorf("%w (%s)", replica.ErrClosed, s.phase)
	}
	return s.phase, nil
}

func (s *stream) setPhase(p replica.Phase) {
	s.mu.Lock()
	s.enterPhase(p)
	s.mu.Unlock()
}

// enterPhase (under mu) times the phase that ends.
func (s *stream) enterPhase(p replica.Phase) {
	now := time.Now()
	if !s.phaseAt.IsZero() && s.phase != p {
		s.phases = append(s.phases, replica.PhaseTiming{Phase: s.phase, Duration: now.Sub(s.phaseAt)})
	}
	s.phase, s.phaseAt = p, now
}

// timedPhases is a copy of the phases that ended.
func (s *stream) timedPhases() []replica.PhaseTiming {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.phases)
}

// run is the background work: the WAL guard, and beside it the work that
// builds the rest of the schema as the initial copy progresses.
func (s *stream) run(ctx context.Context) {
	defer close(s.bgDone)
	workCtx, workCancel := context.WithCancel(ctx)
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		s.work(workCtx)
	}()
	stopWork := func() {
		workCancel()
		<-workDone
	}
	defer stopWork()
	tick := time.NewTicker(s.e.poll)
	defer tick.Stop()
	lastHeld := time.Now()
	for {
		if s.guard(ctx, stopWork) {
			return
		}
		if time.Since(lastHeld) > 5*time.Second {
			s.keepHeld(ctx)
			lastHeld = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// fail records err as what stopped the stream (unless something did
// already) and returns what did.
func (s *stream) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bgErr == nil {
		s.bgErr = fmt.Errorf("logical: stream %q: %w", s.e.spec.ID, err)
		s.e.log.Error("logical: stream failed", "err", err)
	}
	return s.bgErr
}

// stopBackground ends the background work and waits for it.
func (s *stream) stopBackground() {
	if s.cancel != nil {
		s.cancel()
		<-s.bgDone
	}
}

func (s *stream) removeDump() {
	if s.dumpDir != "" {
		_ = os.RemoveAll(s.dumpDir)
	}
}

func (s *stream) closeResources() {
	s.endSnapshot(context.Background())
	if s.src != nil {
		s.src.Close()
	}
	if s.adm != nil {
		s.adm.Close()
	}
	s.heldMu.Lock()
	closeConn(s.held)
	s.held = nil
	s.heldMu.Unlock()
	if s.tgt != nil {
		s.tgt.Close()
	}
	s.removeDump()
}

// Finish implements replica.Stream. It needs the target complete
// (WaitFor returned); until then it is ErrNotReady.
func (s *stream) Finish(ctx context.Context) error {
	phase, err := s.state()
	if phase == replica.PhaseFinished {
		return nil
	}
	if err != nil && !errors.Is(err, replica.ErrClosed) {
		return err
	}
	if phase != replica.PhaseStreaming {
		return fmt.Errorf("logical: finish: %w (phase %s): wait for the target (WaitFor) or Abort", replica.ErrNotReady, phase)
	}
	return s.end(ctx, replica.PhaseFinished, false, "finish")
}

// Abort implements replica.Stream.
func (s *stream) Abort(ctx context.Context) error {
	return s.end(ctx, replica.PhaseAborted, s.m.Created, "abort")
}

// end ends the stream in phase (finished or aborted): it stops the
// background work, drops the replication objects (and the target
// database when dropTarget), and closes what the stream holds. verb
// names the call in its error.
func (s *stream) end(ctx context.Context, phase replica.Phase, dropTarget bool, verb string) error {
	// The background work stops first: the guard takes opMu to abort.
	s.stopBackground()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if phase == replica.PhaseFinished {
		// Read again under opMu: a Finish or the guard's abort may have
		// ended the stream meanwhile.
		if now, err := s.state(); now == replica.PhaseFinished {
			return nil
		} else if err != nil && !errors.Is(err, replica.ErrClosed) {
			return err
		}
	}
	cleanup := func() error { return s.e.cleanup(ctx, dropTarget, s.heldConn()) }
	if s.e.reverse {
		// A reverse never drops a database: both are the tenant's.
		cleanup = func() error { return s.e.cleanupReverse(ctx, s.heldConn()) }
	}
	if err := cleanup(); err != nil {
		return fmt.Errorf("logical: %s: %w", verb, err)
	}
	s.mu.Lock()
	s.phase, s.closed = phase, true
	s.mu.Unlock()
	s.closeResources()
	s.e.log.Info("logical: stream " + string(phase))
	return nil
}

// Close implements replica.Stream.
func (s *stream) Close() error {
	s.stopBackground()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeResources()
	return nil
}
