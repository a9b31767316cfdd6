package logical_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// Under concurrent inserts, updates and deletes, after the fence and the
// barrier the target equals the source; names with quotes, spaces,
// capitals and non-ASCII letters everywhere (database, table, column).
func TestStreamUnderLoad(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	srcDB, dstDB := `Tenant "Größe" DB`, `Mandant 'Ü' Kopie`
	createTenant(t, src, srcDB, 20000)

	w := startWriter(t, src, srcDB, 2)
	ctx := testCtx(t, 3*time.Minute)
	st, err := provider.Start(ctx, spec(`tenant "Größe"/1`, src, srcDB, dst, dstDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Abort(testCtx(t, time.Minute)) })
	p := waitPhase(t, st, replica.PhaseStreaming, 2*time.Minute)
	if p.TablesDone != p.TablesTotal || p.TablesTotal != 4 || p.BytesTotal == 0 || p.BytesCopied != p.BytesTotal {
		t.Errorf("progress after copy: %+v", p)
	}
	t.Logf("caught up while writing: %s; progress %+v", catchUp(t, st, time.Minute), p)

	time.Sleep(300 * time.Millisecond)
	w.stop() // the fence
	if w.committed.Load() == 0 {
		t.Fatal("the writer committed nothing")
	}
	if err := st.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("caught up after the fence: %s (%d transactions written, %d failed)",
		catchUp(t, st, time.Minute), w.committed.Load(), w.failed.Load())
	if err := st.SyncSequences(ctx); err != nil {
		t.Fatal(err)
	}
	for _, level := range []replica.VerifyLevel{replica.VerifyOff, replica.VerifyCounts, replica.VerifyChecksums} {
		if err := st.Verify(ctx, level); err != nil {
			t.Fatalf("verify %s: %v", level, err)
		}
	}
	if s, d := sequences(t, src, srcDB), sequences(t, dst, dstDB); !maps.Equal(s, d) || len(s) != 3 {
		t.Errorf("sequences differ:\nsource %v\ntarget %v", s, d)
	}
	// The target has every index, constraint and trigger.
	const objects = `SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public') * 1000
		+ (SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace) * 10
		+ (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)`
	if s, d := queryInt(t, src, srcDB, objects), queryInt(t, dst, dstDB, objects); s != d {
		t.Errorf("schema objects: source %d, target %d", s, d)
	}

	// A difference is found and names the table.
	execSQL(t, dst, dstDB, `UPDATE orders SET note = 'tampered' WHERE id = (SELECT min(id) FROM orders)`)
	if err := st.Verify(ctx, replica.VerifyCounts); err != nil {
		t.Errorf("counts should still match: %v", err)
	}
	err = st.Verify(ctx, replica.VerifyChecksums)
	if !isErr(err, replica.ErrVerifyMismatch) || !strings.Contains(err.Error(), "public.orders") {
		t.Errorf("verify after tampering: %v", err)
	}

	if err := st.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, srcDB)
	assertNoReplicationObjects(t, dst, dstDB)
	// The target is independent and writable; its comment (the stream's
	// state) is gone.
	execSQL(t, dst, dstDB, fmt.Sprintf(`INSERT INTO %s (%s) VALUES ('after')`, qWeirdTable, qWeirdColumn))
	if n := queryInt(t, dst, "postgres", `SELECT count(*) FROM pg_database WHERE datname = $1
		AND shobj_description(oid, 'pg_database') IS NOT NULL`, dstDB); n != 0 {
		t.Error("the target database still has the stream's marker")
	}
	if err := st.Finish(ctx); err != nil {
		t.Errorf("second Finish: %v", err)
	}
	if _, err := st.Barrier(ctx); !isErr(err, replica.ErrClosed) {
		t.Errorf("Barrier after Finish: %v, want ErrClosed", err)
	}
}

// Source and target on the same server; Abort drops the target database
// it created and leaves no replication object.
func TestSameServerAbort(t *testing.T) {
	t.Parallel()
	inst := localpgtest.Start(t, &localpg.Config{Name: "one"})
	createTenant(t, inst, "shop", 2000)
	ctx := testCtx(t, 2*time.Minute)
	st, err := provider.Start(ctx, spec("same-server", inst, "shop", inst, "shop copy"))
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	execSQL(t, inst, "shop", `INSERT INTO orders (kunde, amount) VALUES (1, 1)`)
	catchUp(t, st, time.Minute)
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if databaseExists(t, inst, "shop copy") {
		t.Error("Abort left the target database it created")
	}
	assertNoReplicationObjects(t, inst, "shop")
	if n := queryInt(t, inst, "shop", `SELECT count(*) FROM orders`); n != 2001 {
		t.Errorf("source has %d orders, want 2001", n)
	}
}

// DDL on the source during the stream is caught by CheckSchema.
func TestSchemaDrift(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "drift", 100)
	ctx := testCtx(t, 2*time.Minute)
	st, err := provider.Start(ctx, spec("drift", src, "drift", dst, "drift"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Abort(ctx); err != nil {
			t.Error(err)
		}
		assertNoReplicationObjects(t, src, "drift")
		assertNoReplicationObjects(t, dst)
	}()
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	if err := st.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	execSQL(t, src, "drift", `ALTER TABLE `+qWeirdTable+` ADD COLUMN extra int`, `CREATE INDEX orders_note ON orders (note)`)
	err = st.CheckSchema(ctx)
	if !isErr(err, replica.ErrSchemaDrift) || !strings.Contains(err.Error(), qWeirdTable) ||
		!strings.Contains(err.Error(), "added index public.orders_note") {
		t.Fatalf("CheckSchema after DDL: %v", err)
	}
	t.Log(err)
}

// A restarted source and a restarted target: the stream catches up. A
// second Start with the same ID (after Close, as after a crash) resumes
// without a second slot.
func TestRestartAndResume(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "tenant", 20000)
	w := startWriter(t, src, "tenant", 2)
	sp := spec("resume-me", src, "tenant", dst, "tenant")
	ctx := testCtx(t, 4*time.Minute)

	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	// The source restarts during the initial copy, and this process
	// "crashes", then resumes.
	if err := src.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = provider.Start(ctx, sp)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	t.Cleanup(func() { _ = st.Abort(testCtx(t, time.Minute)) })
	waitPhase(t, st, replica.PhaseStreaming, 2*time.Minute)
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_replication_slots WHERE slot_name NOT LIKE 'pg\_%\_sync\_%'`); n != 1 {
		t.Errorf("%d stream slots on the source, want 1", n)
	}

	if err := src.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("caught up after a source restart: %s", catchUp(t, st, 2*time.Minute))
	if err := dst.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("caught up after a target restart: %s", catchUp(t, st, 2*time.Minute))

	// Resume once more, streaming.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = provider.Start(ctx, sp)
	if err != nil {
		t.Fatalf("resume while streaming: %v", err)
	}
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_replication_slots`); n != 1 {
		t.Errorf("%d slots on the source after resuming, want 1", n)
	}
	w.stop()
	catchUp(t, st, 2*time.Minute)
	if err := st.SyncSequences(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	if s, d := sequences(t, src, "tenant"), sequences(t, dst, "tenant"); !maps.Equal(s, d) {
		t.Errorf("sequences differ:\nsource %v\ntarget %v", s, d)
	}
	t.Logf("%d transactions written, %d failed during restarts", w.committed.Load(), w.failed.Load())
	if err := st.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, "tenant")
	assertNoReplicationObjects(t, dst, "tenant")
}

// A stalled subscriber makes the source retain WAL; the guard stops the
// stream before the limit: it drops the subscription and the slot, never
// the target database (it could be the one a cutover just switched to).
// The stopped stream cannot be resumed or finished; Abort drops its
// target. A stream whose WaitFor succeeded (a cutover in its window) is
// left to its cutover.
func TestWALGuard(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "big", 100)
	createTenant(t, src, "window", 100)
	sp := spec("guarded", src, "big", dst, "big")
	sp.MaxRetainedWAL = 4 << 20
	inWindow := spec("in its window", src, "window", dst, "window")
	inWindow.MaxRetainedWAL = 4 << 20
	ctx := testCtx(t, 2*time.Minute)
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	win, err := provider.Start(ctx, inWindow)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := win.Abort(testCtx(t, time.Minute)); err != nil {
			t.Error(err)
		}
	}()
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	waitPhase(t, win, replica.PhaseStreaming, time.Minute)
	catchUp(t, win, time.Minute)
	// Stall both subscribers, then write more WAL than the limit.
	for _, db := range []string{"big", "window"} {
		execSQL(t, dst, db, `DO $$ BEGIN EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', (SELECT subname FROM pg_subscription
			WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))); END $$`)
	}
	execSQL(t, src, "big", `INSERT INTO orders (kunde, amount, note) SELECT 1, i, repeat('w', 200) FROM generate_series(1, 30000) i`)
	for {
		p, _ := st.Progress(ctx)
		// The guard reports its error at once, then drops the
		// subscription and the slots, then says aborted.
		if p.Err != nil && !isErr(p.Err, replica.ErrWALLimit) {
			t.Fatalf("stream stopped with %v in phase %s, want ErrWALLimit", p.Err, p.Phase)
		}
		if p.Err != nil && p.Phase == replica.PhaseAborted {
			t.Log(p.Err)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the guard did not fire; last progress %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := st.WaitFor(ctx, 1); !isErr(err, replica.ErrWALLimit) {
		t.Errorf("WaitFor after the guard: %v", err)
	}
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_replication_slots WHERE database = 'big'`); n != 0 {
		t.Errorf("the guard left %d slots", n)
	}
	if n := queryInt(t, dst, "postgres", `SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
		WHERE d.datname = 'big'`); n != 0 {
		t.Errorf("the guard left the subscription")
	}
	if !databaseExists(t, dst, "big") {
		t.Fatal("the guard dropped the target database")
	}
	if n := queryInt(t, dst, "big", `SELECT count(*) FROM orders`); n != 100 {
		t.Errorf("the target has %d orders after the guard, want the 100 it had", n)
	}

	// The stream in its window was not touched, although its slot
	// retains as much WAL.
	time.Sleep(5 * provider.PollInterval)
	if p, err := win.Progress(ctx); err != nil || p.Err != nil || p.Phase != replica.PhaseStreaming || p.RetainedWALBytes < inWindow.MaxRetainedWAL {
		t.Errorf("the stream in its window: %v, progress %+v", err, p)
	}

	// Neither resumed nor finished: only Abort is left.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Start(ctx, sp); !isErr(err, replica.ErrPreflight) || !strings.Contains(err.Error(), "WAL guard") {
		t.Errorf("Start after the guard: %v, want ErrPreflight naming the WAL guard", err)
	}
	if err := provider.Finish(ctx, sp); !isErr(err, replica.ErrWALLimit) {
		t.Errorf("Finish after the guard: %v, want ErrWALLimit", err)
	}
	if err := provider.Abort(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if databaseExists(t, dst, "big") {
		t.Error("Abort left the target database the stream created")
	}
	if n := queryInt(t, src, "big", `SELECT count(*) FROM pg_publication`); n != 0 {
		t.Errorf("%d publications left in the source database", n)
	}
}

// WaitFor's answer is durable on a target whose sessions commit without
// waiting for the WAL flush (synchronous_commit = off; the WAL writer
// flushes only every 10 s here): when it returns, the target's WAL is
// flushed beyond the commit of every transaction applied (the
// subscription's replication origin records the last one's end).
func TestWaitForDurableWithoutSynchronousCommit(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst", Settings: map[string]string{
		"synchronous_commit": "off", "wal_writer_delay": "10s"}})
	createTenant(t, src, "t", 100)
	ctx := testCtx(t, 2*time.Minute)
	st := startStreaming(t, spec("async target", src, "t", dst, "t"))
	dstConn, err := dst.Connect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer dstConn.Close(ctx)
	// The apply worker also commits when it marks a table's copy done
	// (the origin records those commits too): wait until it has.
	for queryInt(t, dst, "t", `SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'`) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 5 {
		execSQL(t, src, "t", fmt.Sprintf(`INSERT INTO orders (kunde, amount, note) VALUES (1, %d, 'durable')`, i))
		catchUp(t, st, time.Minute)
		var n int
		var flushed bool
		var flush, applied string
		if err := dstConn.QueryRow(ctx, `SELECT (SELECT count(*)::int FROM orders WHERE note = 'durable'),
				pg_current_wal_flush_lsn() >= o.local_lsn, pg_current_wal_flush_lsn()::text, o.local_lsn::text
			FROM pg_replication_origin_status o JOIN pg_subscription s ON o.external_id = 'pg_' || s.oid`).
			Scan(&n, &flushed, &flush, &applied); err != nil {
			t.Fatal(err)
		}
		if n != i+1 {
			t.Fatalf("after WaitFor %d: the target has %d of %d rows", i, n, i+1)
		}
		if !flushed {
			t.Fatalf("after WaitFor %d: the target's WAL is flushed to %s, the last applied commit ends at %s", i, flush, applied)
		}
	}
}

// WaitFor returns as soon as the target has applied the barrier: every
// write acknowledged before the barrier is visible on the target when it
// returns, and the wait is short even right after a write.
func TestWaitForIsExactAndQuick(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 1000)
	ctx := testCtx(t, 2*time.Minute)
	st := startStreaming(t, spec("wait-for", src, "t", dst, "t"))
	srcConn, err := src.Connect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer srcConn.Close(ctx)
	dstConn, err := dst.Connect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer dstConn.Close(ctx)
	var waits []time.Duration
	for i := range 20 {
		if _, err := srcConn.Exec(ctx, `INSERT INTO orders (kunde, amount, note) VALUES (1, $1, 'w')`, i); err != nil {
			t.Fatal(err)
		}
		waits = append(waits, catchUp(t, st, time.Minute))
		var n int
		if err := dstConn.QueryRow(ctx, `SELECT count(*) FROM orders WHERE note = 'w'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != i+1 {
			t.Fatalf("after WaitFor %d: the target has %d of %d rows", i, n, i+1)
		}
	}
	slices.Sort(waits)
	t.Logf("barrier + WaitFor right after a write: median %s, max %s", waits[len(waits)/2], waits[len(waits)-1])
}

// An empty target database that exists is used, and kept by Abort (the
// stream did not create it). Provider.Abort cleans up a stream without a
// handle.
func TestExistingEmptyTargetAndProviderAbort(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	localpgtest.CreateDatabase(t, dst, "ready")
	ctx := testCtx(t, 2*time.Minute)
	sp := spec("existing-target", src, "t", dst, "ready")
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	if err := st.Close(); err != nil { // as if the process had died
		t.Fatal(err)
	}
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_replication_slots`); n != 1 {
		t.Fatalf("%d slots after Close, want the stream's 1 (Close leaves the stream running)", n)
	}
	if err := provider.Abort(ctx, sp); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, "t")
	assertNoReplicationObjects(t, dst, "ready")
	if !databaseExists(t, dst, "ready") {
		t.Error("Abort dropped a target database the stream did not create")
	}
	if err := provider.Abort(ctx, sp); err != nil {
		t.Errorf("a second Abort: %v", err)
	}
}

// fence is what cutover's database fence does: the tenant database
// refuses new connections (superusers too) and every client session in
// it is ended. WAL senders are left running.
func fence(t testing.TB, inst *localpg.Instance, db string, on bool) {
	t.Helper()
	execSQL(t, inst, "postgres", fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %t", pgx.Identifier{db}.Sanitize(), !on))
	if on {
		execSQL(t, inst, "postgres", fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = %s AND backend_type = 'client backend'`, "'"+strings.ReplaceAll(db, "'", "''")+"'"))
	}
}

// Everything the cutover does after the fence works while the source
// database refuses connections: barrier, wait, schema check, sequences,
// verify, finish.
func TestUnderDatabaseFence(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	db := `Fenced "Ö" tenant`
	createTenant(t, src, db, 5000)
	w := startWriter(t, src, db, 2)
	ctx := testCtx(t, 2*time.Minute)
	st, err := provider.Start(ctx, spec("fenced", src, db, dst, db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Abort(testCtx(t, time.Minute)) })
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	catchUp(t, st, time.Minute)

	// The stream names the sessions it needs on the source: its held
	// connection and its slot's WAL sender, live WAL senders in the
	// tenant database.
	fencer, ok := st.(interface {
		FencePIDs(ctx context.Context) ([]uint32, error)
	})
	if !ok {
		t.Fatal("the stream has no FencePIDs")
	}
	pids, err := fencer.FencePIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)
		AND datname = $2 AND backend_type = 'walsender'`, pids, db); n != 2 || len(pids) != 2 {
		t.Errorf("FencePIDs %v: %d of them are WAL senders in %q, want 2", pids, n, db)
	}
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_replication_slots WHERE active_pid = ANY($1)`, pids); n != 1 {
		t.Errorf("FencePIDs %v: %d of them serve a slot, want 1", pids, n)
	}

	// The fence ends every other session of the database, whatever its kind.
	fence(t, src, db, true)
	n := queryInt(t, src, "postgres", `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND NOT pid = ANY($2)`, db, pids)
	t.Logf("the fence spared %v and ended %d more sessions", pids, n)
	w.stop()
	if _, err := src.Connect(ctx, db); err == nil {
		t.Fatal("the fence lets connections in")
	}
	t.Logf("caught up under the fence: %s", catchUp(t, st, time.Minute))
	if err := st.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.SyncSequences(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Progress(ctx); err != nil {
		t.Fatal(err)
	}

	// Verification after the switch: the target's snapshot, taken in the
	// window, against the frozen source, while the application writes
	// to the target again.
	snapper, ok := st.(interface {
		SnapshotTarget(ctx context.Context) (string, error)
		VerifySnapshot(ctx context.Context, snapshot string, level replica.VerifyLevel) error
	})
	if !ok {
		t.Fatal("the stream has no SnapshotTarget")
	}
	id, err := snapper.SnapshotTarget(ctx)
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, dst, db, `INSERT INTO events VALUES (1000000000, '2025-06-01', '{}')`)
	if err := snapper.VerifySnapshot(ctx, id, replica.VerifyChecksums); err != nil {
		t.Fatalf("the target's snapshot differs from the frozen source: %v", err)
	}
	if err := snapper.VerifySnapshot(ctx, id, replica.VerifyChecksums); err == nil {
		t.Error("a snapshot verified once was verified again: it should have ended")
	}
	// A difference the snapshot holds is found: a row replaced, the
	// counts equal.
	execSQL(t, dst, db, `DELETE FROM events WHERE id = 1`)
	if id, err = snapper.SnapshotTarget(ctx); err != nil {
		t.Fatal(err)
	}
	if err := snapper.VerifySnapshot(ctx, id, replica.VerifyChecksums); !errors.Is(err, replica.ErrVerifyMismatch) {
		t.Errorf("VerifySnapshot of a target that differs: %v, want ErrVerifyMismatch", err)
	}

	if err := st.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	fence(t, src, db, false)
	if s, d := sequences(t, src, db), sequences(t, dst, db); !maps.Equal(s, d) {
		t.Errorf("sequences differ:\nsource %v\ntarget %v", s, d)
	}
	assertNoReplicationObjects(t, src, db)
	assertNoReplicationObjects(t, dst, db)
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_stat_replication`); n != 0 {
		t.Errorf("%d WAL senders left on the source", n)
	}
}

// Provider.Finish finishes a stream without a handle (a process resumed
// after the switch): the target is kept, nothing of the stream remains.
func TestProviderFinish(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	ctx := testCtx(t, 2*time.Minute)
	sp := spec("finish-without-handle", src, "t", dst, "t")
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	catchUp(t, st, time.Minute)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := provider.Finish(ctx, sp); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, "t")
	assertNoReplicationObjects(t, dst, "t")
	if n := queryInt(t, dst, "t", `SELECT count(*) FROM orders`); n != 100 {
		t.Errorf("target has %d orders, want 100", n)
	}
	if err := provider.Finish(ctx, sp); err != nil {
		t.Errorf("a second Finish: %v", err)
	}
}

// A slot the source invalidates (it kept more WAL than
// max_slot_wal_keep_size allows while the subscriber was stalled) fails
// the stream at once with ErrSlotLost: Progress reports it and WaitFor
// returns it instead of waiting for ever.
func TestSlotLost(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Settings: map[string]string{"max_slot_wal_keep_size": "1MB"}})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	ctx := testCtx(t, 2*time.Minute)
	// With the guard at its default limit, preflight says that the
	// source's bound (1 MB) will act first.
	report, err := provider.Preflight(ctx, spec("lost", src, "t", dst, "t"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(report.Notes, func(n string) bool { return strings.Contains(n, "max_slot_wal_keep_size (1 MB) is below") }) {
		t.Errorf("preflight notes %q: want one saying max_slot_wal_keep_size is below the stream's WAL limit", report.Notes)
	}
	sp := spec("lost", src, "t", dst, "t")
	sp.MaxRetainedWAL = -1 // the stream's own guard is off: the source's bound acts
	st := startStreaming(t, sp)
	execSQL(t, dst, "t", `DO $$ BEGIN EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', (SELECT subname FROM pg_subscription
		WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))); END $$`)
	for i := 0; queryValue[string](t, src, "postgres", `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1`,
		replica.ObjectName("dc", sp.ID)) != "lost"; i++ {
		if i == 20 {
			t.Fatal("the source did not invalidate the slot")
		}
		execSQL(t, src, "t", `INSERT INTO orders (kunde, amount, note) SELECT 1, i, repeat('w', 200) FROM generate_series(1, 5000) i`,
			`SELECT pg_switch_wal()`, `CHECKPOINT`)
	}
	wctx := testCtx(t, 30*time.Second)
	pos, err := st.Barrier(wctx)
	if err == nil {
		err = st.WaitFor(wctx, pos)
	}
	if !isErr(err, replica.ErrSlotLost) {
		t.Errorf("Barrier and WaitFor with the slot lost: %v, want ErrSlotLost", err)
	}
	if p, err := st.Progress(ctx); err != nil || !isErr(p.Err, replica.ErrSlotLost) {
		t.Errorf("Progress with the slot lost: %v, %+v, want Err ErrSlotLost", err, p)
	}
}

// A transaction left open on the source: preflight refuses to start
// while it is older than the limit (the Spec's or the Provider's),
// naming it, unless WaitForLongTransactions (the Spec's or the
// Provider's) accepts it. One opened during the
// copy stalls the table-sync workers, which wait for it while they create
// their slots: Progress names it, and Abort does not wait for it.
func TestLongTransaction(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	ctx := testCtx(t, 3*time.Minute)
	blocker, err := pgx.Connect(ctx, src.ConnString("t")+"&application_name=forgotten")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(ctx)
	open := func() {
		t.Helper()
		if _, err := blocker.Exec(ctx, `BEGIN; INSERT INTO orders (kunde, amount) VALUES (1, 1)`); err != nil {
			t.Fatal(err)
		}
	}
	open()
	pid := blocker.PgConn().PID()
	sp := spec("long-tx", src, "t", dst, "t")
	sp.LongTransactionLimit = time.Millisecond
	time.Sleep(10 * time.Millisecond)
	report, err := provider.Preflight(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if e := report.Err(); e == nil || !strings.Contains(e.Error(), fmt.Sprintf("pid %d", pid)) || !strings.Contains(e.Error(), `"forgotten"`) ||
		!strings.Contains(e.Error(), "WaitForLongTransactions") {
		t.Errorf("preflight with a long transaction: %v, want it named", e)
	}
	sp.LongTransactionLimit = 0
	limiting := &logical.Provider{LongTransactionLimit: time.Millisecond}
	if report, err := limiting.Preflight(ctx, sp); err != nil || report.Err() == nil || !strings.Contains(report.Err().Error(), fmt.Sprintf("pid %d", pid)) {
		t.Errorf("preflight with Provider.LongTransactionLimit and a long transaction: %v %v, want it named", report, err)
	}
	waiting := &logical.Provider{LongTransactionLimit: time.Millisecond, WaitForLongTransactions: true}
	if report, err := waiting.Preflight(ctx, sp); err != nil || report.Err() != nil {
		t.Errorf("preflight with Provider.WaitForLongTransactions: %v %v, want no problem", report.Err(), err)
	}
	sp.LongTransactionLimit, sp.WaitForLongTransactions = time.Millisecond, true
	if report, err := provider.Preflight(ctx, sp); err != nil || report.Err() != nil {
		t.Errorf("preflight with Options.WaitForLongTransactions: %v %v, want no problem", report.Err(), err)
	}
	sp.WaitForLongTransactions = false
	if _, err := blocker.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}

	// A transaction younger than the limit: the stream starts, and the
	// copy waits for it to create the slot.
	sp.LongTransactionLimit = 0
	open()
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var p replica.Progress
	for len(p.Blockers) == 0 {
		if p, err = st.Progress(ctx); err != nil || p.Err != nil {
			t.Fatal(err, p.Err)
		}
		if ctx.Err() != nil {
			t.Fatalf("Progress never named the transaction; last %+v", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b := p.Blockers[0]; b.PID != int(pid) || b.Application != "forgotten" || b.Database != "t" || p.Phase != replica.PhaseCopy {
		t.Errorf("progress %+v, want blocker pid %d (forgotten) in the copy", p, pid)
	}
	t.Log(p.Blockers)
	actx := testCtx(t, time.Minute)
	if err := st.Abort(actx); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, "t")
	assertNoReplicationObjects(t, dst)
	if _, err := blocker.Exec(ctx, `ROLLBACK`); err != nil {
		t.Errorf("the open transaction was ended: %v", err)
	}
}

// A source restarted before the window: Ready returns once the stream has
// reconnected (its slot streams again, its held connection is back). A
// source restarted under a fence that refuses connections keeps the
// subscriber out: Ready fails with ErrNotStreaming after
// Provider.ReadyTimeout, and WaitFor after the grace
// instead of holding the window for its whole budget.
func TestReadyAndSenderLoss(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	ctx := testCtx(t, 3*time.Minute)
	p := &logical.Provider{PollInterval: 100 * time.Millisecond, SenderGrace: 2 * time.Second, ReadyTimeout: 10 * time.Second}
	st, err := p.Start(ctx, spec("ready", src, "t", dst, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Abort(testCtx(t, time.Minute)) })
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	readier, ok := st.(interface {
		Ready(ctx context.Context) error
	})
	if !ok {
		t.Fatal("the stream has no Ready")
	}
	if err := src.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := readier.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	name := replica.ObjectName("dc", "ready")
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_replication_slots sl JOIN pg_stat_replication r ON r.pid = sl.active_pid
		WHERE sl.slot_name = $1`, name); n != 1 {
		t.Error("Ready returned while the slot has no WAL sender")
	}
	pids, err := st.(interface {
		FencePIDs(ctx context.Context) ([]uint32, error)
	}).FencePIDs(ctx)
	if err != nil || len(pids) != 2 {
		t.Errorf("FencePIDs after Ready: %v %v, want the held connection and the WAL sender", pids, err)
	}

	fence(t, src, "t", true)
	if err := src.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Ready gives up after Provider.ReadyTimeout, well before ctx ends.
	if err := readier.Ready(ctx); !isErr(err, replica.ErrNotStreaming) || !strings.Contains(err.Error(), "Provider.ReadyTimeout") {
		t.Errorf("Ready under a fence that keeps the subscriber out: %v, want ErrNotStreaming after Provider.ReadyTimeout", err)
	}
	pos, err := st.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WaitFor(testCtx(t, 30*time.Second), pos); !isErr(err, replica.ErrNotStreaming) {
		t.Errorf("WaitFor without a WAL sender: %v, want ErrNotStreaming", err)
	}
	fence(t, src, "t", false)
}

// Progress goes on through a restart of the target (its queries fail
// for a moment and are tried again), and reports a caller's
// cancellation as a cancellation.
func TestProgressThroughRestart(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	ctx := testCtx(t, 2*time.Minute)
	st := startStreaming(t, spec("progress-restart", src, "t", dst, "t"))
	restarted := make(chan error, 1)
	go func() { restarted <- dst.Restart(ctx) }()
	calls := 0
	for done := false; !done; calls++ {
		select {
		case err := <-restarted:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
		}
		if p, err := st.Progress(ctx); err != nil || p.Err != nil {
			t.Fatalf("Progress during a restart of the target (call %d): %v %v", calls, err, p.Err)
		}
	}
	t.Logf("%d calls of Progress during the restart", calls)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Progress(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Progress with a cancelled context: %v, want context.Canceled", err)
	}
}
