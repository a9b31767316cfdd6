package logical

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/replica"
)

// work advances the stream until it streams, fails or is stopped.
func (s *stream) work(ctx context.Context) {
	if c := s.copy; c != nil {
		cctx, cancel := context.WithCancel(ctx)
		copyDone := make(chan struct{})
		go func() {
			defer close(copyDone)
			s.runCopy(cctx, c)
		}()
		defer func() {
			cancel()
			<-copyDone
		}()
	}
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
	if errors.Is(err, errCopyStopped) {
		return false
	}
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
		copied := s.advanceSubscriptionCopy
		if s.copy != nil {
			copied = s.advanceOwnCopy
		}
		if done, err := copied(ctx); err != nil || !done {
			return err
		}
		s.e.log.Info("logical: every table copied, the keys built", "took", time.Since(s.started))
		s.mu.Lock()
		write := s.m.Phase != markIndexes
		s.m.Phase = markIndexes
		m := *s.m
		s.mu.Unlock()
		if write {
			if err := s.e.writeMarker(ctx, &m); err != nil {
				return err
			}
		}
		if s.copy != nil {
			// After the marker: a stream resumed in phase indexes
			// enables its subscription (checkReplication), one in
			// phase copy copies again.
			if _, err := s.tgt.Exec(ctx, "ALTER SUBSCRIPTION "+ident(s.e.name)+" ENABLE"); err != nil {
				return fmt.Errorf("enable the subscription after the copy: %w", err)
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

// advanceOwnCopy builds the post-data objects of the tables the stream's
// own copy has copied, and reports whether it is done: every table
// copied, and every key built, before the subscription applies changes.
// Within one copy every table is as of the slot's snapshot, so a foreign
// key is built as soon as both its tables are copied.
func (s *stream) advanceOwnCopy(ctx context.Context) (bool, error) {
	s.postMu.Lock()
	defer s.postMu.Unlock()
	if s.postStale {
		// The copy started over, on truncated tables, without their
		// foreign keys: everything is built again.
		clear(s.postDone)
		s.postStale = false
	}
	st := s.copy.state()
	if st.err != nil {
		return false, st.err
	}
	var batch []int
	for i, it := range s.post {
		if s.postDone[i] {
			continue
		}
		if st.finished {
			if it.key {
				batch = append(batch, i)
			}
		} else if len(it.tables) > 0 && allIn(it.tables, st.done) {
			batch = append(batch, i)
		}
	}
	if err := s.restorePost(ctx, batch); err != nil {
		return false, err
	}
	return st.finished, nil
}

// advanceSubscriptionCopy is advanceOwnCopy for a stream of an older
// version, whose subscription copies the data with its table-sync
// workers: it reads their progress from pg_subscription_rel.
func (s *stream) advanceSubscriptionCopy(ctx context.Context) (bool, error) {
	rows, err := s.tgt.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), sr.srsubstate::text
		FROM pg_subscription_rel sr JOIN pg_class c ON c.oid = sr.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE sr.srsubid = $1`, s.m.SubOID)
	if err != nil {
		return false, err
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
			return false, err
		}
		total++
		synced[name] = state == "r" || state == "s"
		applied[name] = state == "r"
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	if countTrue(applied) == total {
		return true, nil
	}
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
	return false, s.restorePost(ctx, batch)
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
