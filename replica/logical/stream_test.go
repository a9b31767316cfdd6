package logical_test

import (
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

// A stalled subscriber makes the source retain WAL; the guard aborts the
// stream before the limit and removes everything.
func TestWALGuard(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "big", 100)
	sp := spec("guarded", src, "big", dst, "big")
	sp.MaxRetainedWAL = 16 << 20
	ctx := testCtx(t, 2*time.Minute)
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	// Stall the subscriber, then write more WAL than the limit.
	var sub string
	conn, err := dst.Connect(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT subname FROM pg_subscription`).Scan(&sub); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ALTER SUBSCRIPTION `+sub+` DISABLE`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	execSQL(t, src, "big", `INSERT INTO orders (kunde, amount, note) SELECT 1, i, repeat('w', 200) FROM generate_series(1, 100000) i`)
	for {
		p, _ := st.Progress(ctx)
		if p.Err != nil {
			if !isErr(p.Err, replica.ErrWALLimit) {
				t.Fatalf("stream stopped with %v, want ErrWALLimit", p.Err)
			}
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
	assertNoReplicationObjects(t, src, "big")
	assertNoReplicationObjects(t, dst)
	if databaseExists(t, dst, "big") {
		t.Error("the guard left the target database the stream created")
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
	st, err := provider.Start(ctx, spec("wait-for", src, "t", dst, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Abort(ctx); err != nil {
			t.Error(err)
		}
	}()
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
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

	fence(t, src, db, true)
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
