package cutover_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestDatabaseFenceStopsBypassingWriters: once Hold returns, a writer that
// never heard of the Router cannot commit on the source, through a session
// it already had or a new one, even as superuser; Release restores it.
func TestDatabaseFenceStopsBypassingWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, &localpg.Config{Password: "fence-pw"})
	const db = "Tenant Fence"
	localpgtest.CreateDatabase(t, inst, db)
	target := cutover.FenceTarget{
		Tenant:   fleet.Tenant{ID: "t", Database: db, Instance: "src"},
		Instance: fleet.Instance{ID: "src", Admin: inst.ConnString("postgres")},
	}
	setup, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec(ctx, "CREATE TABLE w (v int)"); err != nil {
		t.Fatal(err)
	}
	setup.Close(ctx)

	idle, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(ctx)
	inTx, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer inTx.Close(ctx)
	tx, err := inTx.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO w VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	fence := cutover.DatabaseFence{}
	for range 2 { // Hold is idempotent
		if err := fence.Hold(ctx, target); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err == nil {
		t.Error("a transaction begun before the fence committed after it")
	}
	if _, err := idle.Exec(ctx, "INSERT INTO w VALUES (2)"); err == nil {
		t.Error("an idle session wrote after the fence")
	}
	if c, err := pgx.Connect(ctx, inst.ConnString(db)); err == nil {
		c.Close(ctx)
		t.Error("a new superuser session connected to the fenced database")
	}

	for range 2 { // Release is idempotent
		if err := fence.Release(ctx, target); err != nil {
			t.Fatal(err)
		}
	}
	after, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatalf("connect after Release: %v", err)
	}
	defer after.Close(ctx)
	var rows int
	var allow bool
	if err := after.QueryRow(ctx, "SELECT (SELECT count(*) FROM w), (SELECT datallowconn FROM pg_database WHERE datname = current_database())").Scan(&rows, &allow); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || !allow {
		t.Errorf("after Release: %d rows written during the fence (want 0), datallowconn=%v (want true)", rows, allow)
	}
}

// TestDatabaseFenceEndsReplicationSessionsButSpared: with a list of
// sessions to spare (the stream's), the fence also ends replication
// sessions, which can run SQL, and leaves the spared ones alone.
func TestDatabaseFenceEndsReplicationSessionsButSpared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	localpgtest.CreateDatabase(t, inst, "tenant")
	target := cutover.FenceTarget{
		Tenant:   fleet.Tenant{ID: "t", Database: "tenant", Instance: "src"},
		Instance: fleet.Instance{ID: "src", Admin: inst.ConnString("postgres")},
	}
	setup, err := inst.Connect(ctx, "tenant")
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close(ctx)
	if _, err := setup.Exec(ctx, "CREATE TABLE w (v int)"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig(inst.ConnString("tenant"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	repl, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(ctx)
	if _, err := repl.Exec(ctx, "INSERT INTO w VALUES (1)").ReadAll(); err != nil {
		t.Fatalf("a replication session could not write before the fence: %v", err)
	}
	spared, err := inst.Connect(ctx, "tenant")
	if err != nil {
		t.Fatal(err)
	}
	defer spared.Close(ctx)
	target.Spare = cutover.SparePIDs{spared.PgConn().PID()}

	if err := (cutover.DatabaseFence{}).Hold(ctx, target); err != nil {
		t.Fatal(err)
	}
	if _, err := repl.Exec(ctx, "INSERT INTO w VALUES (2)").ReadAll(); err == nil {
		t.Error("a replication session wrote after the fence")
	}
	var n int
	if err := spared.QueryRow(ctx, "SELECT count(*) FROM w").Scan(&n); err != nil {
		t.Fatalf("the spared session was ended: %v", err)
	}
	if n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
	if err := (cutover.DatabaseFence{}).Release(ctx, target); err != nil {
		t.Fatal(err)
	}

	// The PIDs to spare change (a stream that reconnected has new
	// ones), so the fence asks before each round: a session its Spare
	// names no more is ended, though the first round spared it.
	target.Spare = &changingSparer{first: []uint32{spared.PgConn().PID()}}
	if err := (cutover.DatabaseFence{}).Hold(ctx, target); err != nil {
		t.Fatal(err)
	}
	defer (cutover.DatabaseFence{}).Release(ctx, target)
	if err := spared.Ping(ctx); err == nil {
		t.Error("a session the Spare named only in the first round outlived the fence: the fence did not ask again")
	}
}

// changingSparer names first on its first call and nothing after.
type changingSparer struct {
	mu    sync.Mutex
	first []uint32
	calls int
}

func (s *changingSparer) FencePIDs(context.Context) ([]uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls++; s.calls == 1 {
		return s.first, nil
	}
	return []uint32{}, nil
}

// TestDatabaseFenceHoldsASet: HoldAll fences many databases of an
// instance at once (a conversion's window): a session of each is ended,
// no new session gets in, a database outside the set is left alone, and
// ReleaseAll opens them all again.
func TestDatabaseFenceHoldsASet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	src := fleet.Instance{ID: "src", Admin: inst.ConnString("postgres")}
	var targets []cutover.FenceTarget
	var sessions []*pgx.Conn
	for _, db := range []string{"t1", "t 2", "T3", "outside"} {
		localpgtest.CreateDatabase(t, inst, db)
		conn, err := inst.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		sessions = append(sessions, conn)
		if db != "outside" {
			targets = append(targets, cutover.FenceTarget{Tenant: fleet.Tenant{ID: db, Database: db, Instance: "src"}, Instance: src})
		}
	}
	var fence cutover.BatchFence = cutover.DatabaseFence{}
	for range 2 { // HoldAll is idempotent
		if err := fence.HoldAll(ctx, targets); err != nil {
			t.Fatal(err)
		}
	}
	for i, tg := range targets {
		if _, err := sessions[i].Exec(ctx, "SELECT 1"); err == nil {
			t.Errorf("a session of %q survived the fence", tg.Tenant.Database)
		}
		if c, err := inst.Connect(ctx, tg.Tenant.Database); err == nil {
			c.Close(ctx)
			t.Errorf("a new session connected to the fenced %q", tg.Tenant.Database)
		}
	}
	if _, err := sessions[3].Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("the fence ended a session of a database outside the set: %v", err)
	}
	for range 2 { // ReleaseAll is idempotent
		if err := fence.ReleaseAll(ctx, targets); err != nil {
			t.Fatal(err)
		}
	}
	for _, tg := range targets {
		c, err := inst.Connect(ctx, tg.Tenant.Database)
		if err != nil {
			t.Errorf("%q after ReleaseAll: %v", tg.Tenant.Database, err)
			continue
		}
		c.Close(ctx)
	}
}

// TestDatabaseFenceEndsSessionsStillStarting: a session that passed the
// database's connection check just before the fence, and is slow to
// finish starting (post_auth_delay here; a loaded server anywhere), is
// not yet in pg_stat_activity when the fence looks: the fence ends it
// anyway, and it never writes.
func TestDatabaseFenceEndsSessionsStillStarting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	localpgtest.CreateDatabase(t, inst, "tenant")
	setup, err := inst.Connect(ctx, "tenant")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec(ctx, "CREATE TABLE w (v int)"); err != nil {
		t.Fatal(err)
	}
	setup.Close(ctx)
	target := cutover.FenceTarget{
		Tenant:   fleet.Tenant{ID: "t", Database: "tenant", Instance: "src"},
		Instance: fleet.Instance{ID: "src", Admin: inst.ConnString("postgres")},
	}

	cfg, err := pgx.ParseConfig(inst.ConnString("tenant"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["post_auth_delay"] = "2" // seconds between the connection check and pg_stat_activity
	wrote := make(chan error, 1)
	go func() {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			wrote <- err
			return
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "INSERT INTO w VALUES (1)")
		wrote <- err
	}()
	// Wait until the session is past the check: it holds its startup
	// lock on the database.
	admin, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		var starting int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.objid
			WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass AND d.datname = 'tenant'`).Scan(&starting); err != nil {
			t.Fatal(err)
		}
		if starting > 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the delayed session never got past the connection check")
		}
	}
	if err := (cutover.DatabaseFence{}).Hold(ctx, target); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err == nil {
		t.Error("a session that was starting when the fence went up wrote after it")
	}
	var rows int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'tenant'").Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d sessions in the fenced database (%v)", rows, err)
	}
}
