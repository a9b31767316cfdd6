package logical

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
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
	postDone                     []bool     // (only the background work touches these)
	batches                      int

	cancel context.CancelFunc
	bgDone chan struct{}
	// guardOff is set once WaitFor succeeded: the cutover is in its
	// window, and the stream ends by its Finish or Abort.
	guardOff atomic.Bool

	// opMu serializes Finish, Abort, Close and the guard's abort. Take it
	// only after stopBackground: the guard takes it before it exits.
	opMu sync.Mutex

	mu     sync.Mutex
	m      *marker
	phase  replica.Phase
	bgErr  error // what stopped the stream in the background
	closed bool
	// progress estimates
	copy0    sample // first copy sample of this handle
	lagPrev  sample
	catchETA time.Duration
	srcSizes map[string]int64
}

type sample struct {
	at    time.Time
	bytes int64
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
	s.phase = p
	s.mu.Unlock()
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

// work advances the stream until it streams, fails or is stopped.
func (s *stream) work(ctx context.Context) {
	tick := time.NewTicker(s.e.poll)
	defer tick.Stop()
	var failures restoreFailures
	for {
		phase, err := s.state()
		if err != nil || (phase != replica.PhaseCopy && phase != replica.PhaseIndexes) {
			return
		}
		if err := s.advance(ctx, phase); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !s.retryable(ctx, err, &failures) {
				s.mu.Lock()
				s.bgErr = fmt.Errorf("logical: stream %q: %w", s.e.spec.ID, err)
				s.mu.Unlock()
				s.e.log.Error("logical: stream failed", "err", err)
				return
			}
			s.e.log.Debug("logical: will retry", "err", err)
		} else {
			failures = restoreFailures{}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// A pg_restore that fails while the target is up is run again until it
// has failed restoreTries times in a row over at least restoreRetryFor;
// then its error stops the stream. Its failure can pass (a deadlock with
// the apply worker), and it says why only in words, in the target's
// language.
const restoreTries = 3

var restoreRetryFor = 30 * time.Second // a variable for the tests

// restoreFailures counts a run of failed pg_restores.
type restoreFailures struct {
	n     int
	first time.Time
}

// retryable reports whether the background work should try again after
// err: a transient error, or a pg_restore that failed while the target
// was down (a restart) or not yet often and long enough (see
// restoreTries). Otherwise the error stops the stream and Progress
// reports it.
func (s *stream) retryable(ctx context.Context, err error, f *restoreFailures) bool {
	if transient(err) {
		return true
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if perr := s.tgt.Ping(pctx); perr != nil && ctx.Err() == nil {
		return true
	}
	if f.n == 0 {
		f.first = time.Now()
	}
	f.n++
	return f.n < restoreTries || time.Since(f.first) < restoreRetryFor
}

// advance builds the indexes, constraints and triggers of the tables
// whose initial copy is done (pgcopydb does the same), and once every
// table is copied, the rest; then the stream streams.
func (s *stream) advance(ctx context.Context, phase replica.Phase) error {
	if phase == replica.PhaseCopy {
		rows, err := s.tgt.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), sr.srsubstate::text
			FROM pg_subscription_rel sr JOIN pg_class c ON c.oid = sr.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE sr.srsubid = $1`, s.m.SubOID)
		if err != nil {
			return err
		}
		// A table in state s (sync done) holds its data as of its own
		// copy, which may be ahead of the apply worker; in state r the
		// apply worker keeps it, at the same position as every other
		// table in r. An index needs its table whole (s or r); a foreign
		// key reads two tables, which must agree (both r), else its
		// validation can fail on a row the other table does not have yet.
		synced, applied := map[string]bool{}, map[string]bool{}
		total := 0
		for rows.Next() {
			var name, state string
			if err := rows.Scan(&name, &state); err != nil {
				rows.Close()
				return err
			}
			total++
			synced[name] = state == "r" || state == "s"
			applied[name] = state == "r"
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if countTrue(applied) < total {
			var batch []int
			for i, it := range s.post {
				need := synced
				if len(it.tables) > 1 {
					need = applied
				}
				if !s.postDone[i] && len(it.tables) > 0 && allIn(it.tables, need) {
					batch = append(batch, i)
				}
			}
			return s.restorePost(ctx, batch)
		}
		s.e.log.Info("logical: initial copy done", "tables", total, "took", time.Since(s.started))
		s.mu.Lock()
		write := s.m.Phase != markIndexes
		s.m.Phase = markIndexes
		s.mu.Unlock()
		if write {
			if err := s.e.writeMarker(ctx, s.m); err != nil {
				return err
			}
		}
		s.setPhase(replica.PhaseIndexes)
	}
	t0 := time.Now()
	var rest []int
	for i := range s.post {
		if !s.postDone[i] {
			rest = append(rest, i)
		}
	}
	if err := s.restorePost(ctx, rest); err != nil {
		return err
	}
	if err := s.refreshMatviews(ctx); err != nil {
		return err
	}
	// Last: a setting of the source database (a statement_timeout, say)
	// must not hold for the restores above.
	if err := s.copyDatabaseProps(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.m.Phase = markComplete
	s.mu.Unlock()
	if err := s.e.writeMarker(ctx, s.m); err != nil {
		return err
	}
	s.e.log.Info("logical: schema complete", "last batch took", time.Since(t0))
	s.setPhase(replica.PhaseStreaming)
	s.removeDump()
	return nil
}

// restorePost restores some post-data objects with pg_restore --jobs.
// Each is dropped first if it exists (--clean --if-exists), so a restore
// that was interrupted (a resumed stream, a retry) can simply run again.
func (s *stream) restorePost(ctx context.Context, items []int) error {
	if len(items) == 0 {
		return nil
	}
	s.batches++
	list := filepath.Join(s.dumpDir, fmt.Sprintf("post-%d.list", s.batches))
	lines := make([]string, len(items))
	for i, it := range items {
		lines[i] = s.post[it].line
	}
	if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	args := restoreArgs(s.e.spec.NoOwner, list, s.dumpFile, "--clean", "--if-exists", fmt.Sprintf("--jobs=%d", s.e.jobs))
	tgt := s.e.tgtDB.With("options", strings.TrimSpace(s.e.tgtDB["options"]+" -c maintenance_work_mem="+s.e.mwm))
	t0 := time.Now()
	if err := pgTool(ctx, s.e.binDir, "pg_restore", tgt, args...); err != nil {
		return fmt.Errorf("restore indexes, constraints and triggers: %w", err)
	}
	for _, it := range items {
		s.postDone[it] = true
	}
	s.e.log.Info("logical: indexes, constraints and triggers built", "objects", len(items), "took", time.Since(t0))
	return nil
}

// copyDatabaseProps gives the target database the source database's
// owner, privileges and settings (see dbprops.go), read from the source's
// admin database (the catalogs are shared), which a fence leaves open.
func (s *stream) copyDatabaseProps(ctx context.Context) error {
	props, err := readDatabaseProps(ctx, s.adm, s.e.spec.SourceDatabase)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, s.e.tgtAdmin, "target")
	if err != nil {
		return err
	}
	defer closeConn(conn)
	return applyDatabaseProps(ctx, conn, s.e.spec.TargetDatabase, props, s.e.spec.NoOwner)
}

// refreshMatviews populates the target's materialized views that are
// populated on the source: pg_dump --schema-only creates them WITH NO
// DATA, and logical replication does not carry them. Each is computed
// from the target's tables, which the initial copy has filled. They go
// in creation order, and those that fail (one that reads another not yet
// populated) again after the others, until a pass populates none.
func (s *stream) refreshMatviews(ctx context.Context) error {
	var views []string
	err := s.readSource(ctx, func(q querier, _ int) (err error) {
		rows, err := q.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'm' AND c.relispopulated AND `+userSchemas+` AND `+notExtensionMember("pg_class", "c.oid")+`
			ORDER BY c.oid`)
		views, err = collectErr[string](rows, err)
		return err
	})
	if err != nil {
		return fmt.Errorf("list the source's materialized views: %w", err)
	}
	t0 := time.Now()
	for pending := views; len(pending) > 0; {
		var failed []string
		var errs []error
		for _, v := range pending {
			// v is quoted by quote_ident above.
			if _, err := s.tgt.Exec(ctx, "REFRESH MATERIALIZED VIEW "+v); err != nil {
				if transient(err) || ctx.Err() != nil {
					return err
				}
				failed = append(failed, v)
				errs = append(errs, fmt.Errorf("%s: %w", v, err))
			}
		}
		if len(failed) == len(pending) {
			return fmt.Errorf("refresh materialized views on the target: %w", errors.Join(errs...))
		}
		pending = failed
	}
	if len(views) > 0 {
		s.e.log.Info("logical: materialized views refreshed", "count", len(views), "took", time.Since(t0))
	}
	return nil
}

func countTrue(set map[string]bool) int {
	n := 0
	for _, v := range set {
		if v {
			n++
		}
	}
	return n
}

func allIn(names []string, set map[string]bool) bool {
	for _, n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

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
	if err == nil && lost(walStatus) {
		// Nothing to protect any more; what is left is Abort's.
		s.fail(s.slotLost())
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

// pollBackoff paces a wait that looks again and again: from initial,
// doubling, to at most max, for as long as the wait goes on.
func pollBackoff(initial, max time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = initial, max, 0
	b.RandomizationFactor = 0
	b.Reset()
	return b
}

// lost reports whether a slot's wal_status says the source invalidated
// it.
func lost(walStatus *string) bool { return walStatus != nil && *walStatus == "lost" }

func (s *stream) slotLost() error {
	return fmt.Errorf("%w: the source invalidated slot %s (wal_status lost): it kept more WAL for the stream than the source's max_slot_wal_keep_size allows, "+
		"so changes the target had not received are gone: Abort the stream and start it again", replica.ErrSlotLost, s.e.name)
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

// stopReplication is the guard's abort: it marks the stream aborted in
// the target's marker, then drops the subscription, the slots (which
// frees the source's WAL) and the publication. The target database, and
// its marker, stay: the guard never drops a database, which could be the
// one the cutover just switched to. Abort drops it (when the stream
// created it); Start refuses the stream. The slots go even when the
// target cannot be reached (a target that is down is one reason WAL
// piles up): protecting the source comes first, and Abort drops the
// subscription later.
func (s *stream) stopReplication(ctx context.Context) error {
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
	p := replica.Progress{Phase: phase, Elapsed: time.Since(s.started), Err: err}
	if err != nil {
		if errors.Is(err, replica.ErrClosed) {
			return p, backoff.Permanent(err)
		}
		return p, nil
	}
	// Tables and bytes: the target knows each table's copy state, the
	// source its size.
	rows, err := s.tgt.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), sr.srsubstate::text,
			pg_relation_size(c.oid)
		FROM pg_subscription_rel sr JOIN pg_class c ON c.oid = sr.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE sr.srsubid = $1`, s.m.SubOID)
	if err != nil {
		return p, fmt.Errorf("logical: progress: %w", err)
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
			return p, err
		}
		tables = append(tables, t)
		names = append(names, t.name)
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("logical: progress: %w", err)
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
	var lag, retained *int64
	var walStatus *string
	err = s.adm.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8, (pg_current_wal_lsn() - restart_lsn)::int8, wal_status
		FROM pg_replication_slots WHERE slot_name = $1`, s.e.name).Scan(&lag, &retained, &walStatus)
	if err == pgx.ErrNoRows {
		return p, fmt.Errorf("%w: slot %s", replica.ErrSlotLost, s.e.name)
	}
	if err != nil {
		return p, fmt.Errorf("logical: progress: %w", err)
	}
	if phase == replica.PhaseCopy && p.TablesDone < p.TablesTotal {
		// Best effort: the copy's progress matters more than why it waits.
		if b, err := s.slotBlockers(ctx); err == nil {
			p.Blockers = b
		}
	}
	if lost(walStatus) && !s.guardOff.Load() { // in the window, the target has everything it needs
		p.Err = s.fail(s.slotLost())
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
	poll := pollBackoff(min(s.e.poll, 10*time.Millisecond), 100*time.Millisecond)
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
			if err != nil && (errors.Is(err, replica.ErrSlotLost) || !transient(err)) {
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
	if err == pgx.ErrNoRows {
		return false, false, fmt.Errorf("%w: slot %s", replica.ErrSlotLost, s.e.name)
	}
	if err != nil {
		return false, false, err
	}
	if lost(walStatus) {
		return false, false, s.slotLost()
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
		if err == pgx.ErrNoRows {
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
		if err == pgx.ErrNoRows {
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

// nudge writes an empty logical message on the source, after which the
// WAL sender sends the subscriber its new position (see WaitFor). Errors
// do not matter: the position comes anyway, only later.
func (s *stream) nudge(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var x any
	_ = s.adm.QueryRow(ctx, `SELECT pg_logical_emit_message(true, 'daisychain', 'nudge')::text`).Scan(&x)
}

// SyncSequences implements replica.Stream.
func (s *stream) SyncSequences(ctx context.Context) error {
	if _, err := s.state(); err != nil {
		return err
	}
	type seqVal struct {
		name   string
		last   int64
		called bool
	}
	var vals []seqVal
	err := s.readSource(ctx, func(q querier, _ int) error {
		vals = vals[:0]
		rows, err := q.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'S' AND `+userSchemas+` AND `+notExtensionMember("pg_class", "c.oid")+` ORDER BY 1`)
		seqs, err := collectErr[string](rows, err)
		if err != nil {
			return fmt.Errorf("list sequences: %w", err)
		}
		for _, seq := range seqs {
			v := seqVal{name: seq}
			// seq is quoted by quote_ident above.
			if err := q.QueryRow(ctx, "SELECT last_value, is_called FROM "+seq).Scan(&v.last, &v.called); err != nil {
				return fmt.Errorf("read sequence %s: %w", seq, err)
			}
			vals = append(vals, v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("logical: sync sequences: %w", err)
	}
	if len(vals) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, v := range vals {
		batch.Queue(`SELECT setval($1::regclass, $2, $3)`, v.name, v.last, v.called)
	}
	if err := s.tgt.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("logical: set sequences on the target: %w", err)
	}
	s.e.log.Info("logical: sequences synced", "count", len(vals))
	return nil
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

// CheckSchema implements replica.Stream.
func (s *stream) CheckSchema(ctx context.Context) error {
	if _, err := s.state(); err != nil {
		return err
	}
	var now map[string]string
	err := s.readSource(ctx, func(q querier, _ int) (err error) {
		now, err = fingerprint(ctx, q)
		return err
	})
	if err != nil {
		return fmt.Errorf("logical: %w", err)
	}
	return driftError(s.m.Fingerprint, now)
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
	// The background work stops first: the guard takes opMu to abort.
	s.stopBackground()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if phase, err := s.state(); phase == replica.PhaseFinished {
		return nil
	} else if err != nil && !errors.Is(err, replica.ErrClosed) {
		return err
	}
	if err := s.e.cleanup(ctx, false, s.heldConn()); err != nil {
		return fmt.Errorf("logical: finish: %w", err)
	}
	s.mu.Lock()
	s.phase, s.closed = replica.PhaseFinished, true
	s.mu.Unlock()
	s.closeResources()
	s.e.log.Info("logical: stream finished")
	return nil
}

// Abort implements replica.Stream.
func (s *stream) Abort(ctx context.Context) error {
	s.stopBackground()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.e.cleanup(ctx, s.m.Created, s.heldConn()); err != nil {
		return fmt.Errorf("logical: abort: %w", err)
	}
	s.mu.Lock()
	s.phase, s.closed = replica.PhaseAborted, true
	s.mu.Unlock()
	s.closeResources()
	s.e.log.Info("logical: stream aborted")
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
