package cutover_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags/pgbouncer/pgbouncertest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// startPgBouncer runs PgBouncer in transaction pooling in front of db on
// inst, and returns its port.
func startPgBouncer(t *testing.T, inst *localpg.Instance, db string) int {
	t.Helper()
	return pgbouncertest.Start(t, &pgbouncertest.Config{Databases: map[string]string{db: pgbouncertest.Entry(inst, db)}}).Port
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPgBouncerFenceHoldsClients: while the fence is held, a client of
// PgBouncer waits instead of failing, and nothing commits; after Release
// its statement completes without an error.
func TestPgBouncerFenceHoldsClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	const db = "tenant"
	localpgtest.CreateDatabase(t, inst, db)
	direct, err := inst.Connect(ctx, db)
	must(t, err)
	defer direct.Close(ctx)
	_, err = direct.Exec(ctx, "CREATE TABLE w (v int)")
	must(t, err)

	port := startPgBouncer(t, inst, db)
	clientURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&default_query_exec_mode=simple_protocol", port, db)
	client, err := pgx.Connect(ctx, clientURL)
	must(t, err)
	defer client.Close(ctx)
	_, err = client.Exec(ctx, "INSERT INTO w VALUES (1)")
	must(t, err)

	fence := cutover.PgBouncerFence{Admin: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pgbouncer?sslmode=disable", port)}
	target := cutover.FenceTarget{Tenant: fleet.Tenant{ID: "t", Database: db, Instance: "src"}}
	must(t, fence.Hold(ctx, target))
	must(t, fence.Hold(ctx, target)) // idempotent

	held := make(chan error, 1)
	go func() {
		_, err := client.Exec(ctx, "INSERT INTO w VALUES (2)")
		held <- err
	}()
	// PgBouncer counts the client as waiting: its statement is held.
	admin, err := pgx.ParseConfig(fence.Admin)
	must(t, err)
	admin.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	console, err := pgx.ConnectConfig(ctx, admin)
	must(t, err)
	defer console.Close(ctx)
	for deadline := time.Now().Add(30 * time.Second); pgbouncertest.Pools(t, console, db).ClientsWaiting == 0; {
		select {
		case err := <-held:
			t.Fatalf("a client statement completed while the fence was held: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("PgBouncer never counted the client as waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-held:
		t.Fatalf("a client statement completed while the fence was held: %v", err)
	default:
	}
	var n int
	must(t, direct.QueryRow(ctx, "SELECT count(*) FROM w").Scan(&n))
	if n != 1 {
		t.Errorf("%d rows while held, want 1", n)
	}
	must(t, fence.Release(ctx, target))
	must(t, fence.Release(ctx, target)) // idempotent
	if err := <-held; err != nil {
		t.Errorf("held statement failed after Release: %v", err)
	}
	must(t, direct.QueryRow(ctx, "SELECT count(*) FROM w").Scan(&n))
	if n != 2 {
		t.Errorf("%d rows after Release, want 2", n)
	}

	unknown := cutover.FenceTarget{Tenant: fleet.Tenant{ID: "x", Database: "not_in_pgbouncer"}}
	if err := fence.Hold(ctx, unknown); err == nil {
		t.Error("Hold of a database PgBouncer does not know succeeded")
	}
	// A set with a database PgBouncer lacks is refused before any PAUSE
	// goes out: the known database still serves.
	if err := fence.HoldAll(ctx, []cutover.FenceTarget{target, unknown}); err == nil || !strings.Contains(err.Error(), "not_in_pgbouncer") {
		t.Errorf("HoldAll of a set with a database PgBouncer lacks: %v, want an error naming it", err)
	}
	if pgBouncerPaused(t, fence.Admin, db) {
		t.Error("HoldAll paused a database before finding that PgBouncer lacks another of the set")
		must(t, fence.Release(ctx, target))
	}
}

// TestPgBouncerFenceCheckedBeforeTheWindow: a move whose PgBouncer lacks
// the tenant's database rolls back before its window opens (the run
// connects to the admin console and checks it first), so the routes are
// never paused for it.
func TestPgBouncerFenceCheckedBeforeTheWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	src := f.Instances["pg-a"]
	localpgtest.CreateDatabase(t, src, "other")
	port := startPgBouncer(t, src, "other")
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, Fences: []cutover.Fence{cutover.DatabaseFence{},
		cutover.PgBouncerFence{Admin: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pgbouncer?sslmode=disable", port)}}})
	must(t, err)
	rep, err := mover.Move(ctx, cutover.Request{ID: "no-pgbouncer-db", Tenant: "acme", Target: "pg-b"})
	if !errors.Is(err, cutover.ErrRolledBack) || !strings.Contains(err.Error(), `"acme"`) {
		t.Fatalf("move: %v, want a rollback naming the database PgBouncer lacks\n%s", err, rep)
	}
	for _, s := range rep.Steps {
		if s.Step == cutover.StepPause || s.Step == cutover.StepFence {
			t.Errorf("the window opened (step %s ran) before the PgBouncer fence was checked\n%s", s.Step, rep)
		}
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
		t.Errorf("route after the rollback: %+v, %v", route, err)
	}
}

// TestPgBouncerFenceHoldWaitsForAnotherPause: a database that someone
// else (a flags/pgbouncer Follower, an operator) paused is not yet
// drained; Hold returns only once the transaction open through PgBouncer
// has ended, and RESUMEs of a database no longer paused are no errors.
func TestPgBouncerFenceHoldWaitsForAnotherPause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	const db = "tenant"
	localpgtest.CreateDatabase(t, inst, db)
	pgb := pgbouncertest.Start(t, &pgbouncertest.Config{Databases: map[string]string{db: pgbouncertest.Entry(inst, db)}})
	client, err := pgx.Connect(ctx, pgb.ClientURL(db))
	must(t, err)
	defer client.Close(ctx)
	_, err = client.Exec(ctx, "CREATE TABLE w (v int)")
	must(t, err)
	tx, err := client.Begin(ctx)
	must(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO w VALUES (1)")
	must(t, err)

	// Someone else pauses: their PAUSE waits for the transaction.
	other := pgb.Console(t)
	otherPaused := make(chan error, 1)
	go func() {
		_, err := other.Exec(ctx, "PAUSE "+db)
		otherPaused <- err
	}()
	console := pgb.Console(t)
	for deadline := time.Now().Add(30 * time.Second); !pgbouncertest.Databases(t, console)[db].Paused; {
		if time.Now().After(deadline) {
			t.Fatal("the other PAUSE never showed in SHOW DATABASES")
		}
		time.Sleep(5 * time.Millisecond)
	}

	fence := cutover.PgBouncerFence{Admin: pgb.Admin}
	target := cutover.FenceTarget{Tenant: fleet.Tenant{ID: "t", Database: db, Instance: "src"}}
	held := make(chan error, 1)
	go func() { held <- fence.Hold(ctx, target) }()
	early := false
	select {
	case err := <-held:
		t.Errorf("Hold returned (%v) while a transaction through PgBouncer was still open", err)
		early = true
	case <-time.After(300 * time.Millisecond):
	}
	if p := pgbouncertest.Pools(t, console, db); p.ServersActive == 0 {
		t.Errorf("the open transaction holds no server connection (%+v): the test tests nothing", p)
	}
	must(t, tx.Commit(ctx))
	if !early {
		must(t, <-held)
	}
	if p := pgbouncertest.Pools(t, console, db); p.ServersActive != 0 {
		t.Errorf("Hold returned with %d active server connections", p.ServersActive)
	}
	must(t, <-otherPaused)

	// The other party resumes first: Release finds nothing to do.
	_, err = console.Exec(ctx, "RESUME "+db)
	must(t, err)
	must(t, fence.Release(ctx, target))
	_, err = client.Exec(ctx, "INSERT INTO w VALUES (2)")
	must(t, err)
}
