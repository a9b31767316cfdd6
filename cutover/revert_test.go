package cutover_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestRevertUnderWrites: a tenant moves, the application writes on the
// target, and Revert takes it back under writes through the Router: no
// application error, every write acknowledged before and after the
// switch on the source, the route and the catalog on the source, the
// source open again to the roles the move fenced out, and nothing left
// of either stream or of the target's copy.
func TestRevertUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	src := f.Instances["pg-a"]
	execIn(t, f, "pg-a", "postgres", "CREATE ROLE app LOGIN; CREATE ROLE dba LOGIN SUPERUSER PASSWORD 'dba-pw'")
	// dba is a superuser other than the admin: privileges do not bind it,
	// the source copy's read-only default does.
	dbaWrite := func() error {
		conn, err := pgx.Connect(ctx, src.ConnStringAs("dba", "dba-pw", "acme"))
		must(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "INSERT INTO customers (email) VALUES ('dba-' || gen_random_uuid() || '@example.com')")
		return err
	}
	canConnect := func() bool {
		conn, err := src.Connect(ctx, "postgres")
		must(t, err)
		defer conn.Close(ctx)
		var ok bool
		must(t, conn.QueryRow(ctx, "SELECT has_database_privilege('app', 'acme', 'CONNECT')").Scan(&ok))
		return ok
	}
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second})
	must(t, err)
	w := cutovertest.StartWorkload(f.Router, "acme", 4)
	waitForAcks(t, w, 20)
	rep, err := mover.Move(ctx, cutover.Request{ID: "move-1", Tenant: "acme", Target: "pg-b"})
	if err != nil || !rep.Reverse {
		t.Fatalf("move: %v; reverse %v\n%s", err, rep.Reverse, rep)
	}
	if canConnect() {
		t.Error("after the move, role app may connect to the source copy: it is not fenced by privileges")
	}
	if err := dbaWrite(); pgErrCode(err) != "25006" {
		t.Errorf("after the move, a superuser's write to the source copy: %v, want 25006 (read-only transaction)", err)
	}
	waitForAcks(t, w, 50) // on the target, carried back by the reverse stream

	rev, err := mover.Revert(ctx, "move-1")
	if err != nil {
		t.Fatalf("revert: %v\n%s", err, rev)
	}
	waitForAcks(t, w, 20) // on the source again
	stats := w.Stop()
	t.Logf("move window %s, revert window %s\n%s", rep.Window, rev.Window, rev)
	if stats.Errors != 0 {
		t.Errorf("application saw %d errors; first: %v", stats.Errors, stats.FirstError)
	}
	if rev.RolledBack || rev.Window <= 0 || rev.Kind != "revert" || rev.Reverts != "move-1" {
		t.Errorf("revert report: %+v", rev)
	}
	conn, err := src.Connect(ctx, "acme")
	must(t, err)
	defer conn.Close(ctx)
	if missing, err := w.Missing(ctx, conn); err != nil || missing != 0 || stats.Acknowledged == 0 {
		t.Errorf("%d of %d acknowledged writes missing on the source (%v)", missing, stats.Acknowledged, err)
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
		t.Errorf("route after the revert: %v, %v", route, err)
	}
	if tn, err := f.Catalog.Locate(ctx, "acme"); err != nil || tn.Instance != "pg-a" {
		t.Errorf("catalog after the revert: %+v, %v", tn, err)
	}
	if !canConnect() {
		t.Error("after the revert, role app may not connect to the source")
	}
	if err := dbaWrite(); err != nil {
		t.Errorf("after the revert, a superuser's write to the source: %v", err)
	}
	assertNoReplicationObjects(t, f)
	assertNoPublications(t, f, "acme")
	if databaseExists(t, f, "pg-b", "acme") {
		t.Error("the target's copy is still there after the revert")
	}
	if open, _ := f.Journal.Open(ctx, cutover.KindMove); len(open) != 0 {
		t.Errorf("journals still open: %v", open)
	}
	if _, err := mover.Revert(ctx, "move-1"); !errors.Is(err, cutover.ErrNotRevertible) {
		t.Errorf("second Revert: %v, want ErrNotRevertible", err)
	}
	if rep, err := mover.Resume(ctx, "move-1"); err != nil {
		t.Errorf("Resume of the reverted move: %v", err)
	} else if rep.RevertedBy != rev.Move {
		t.Errorf("Resume of the reverted move: reverted by %q, want %q", rep.RevertedBy, rev.Move)
	}
	if err := mover.Retire(ctx, "move-1"); !errors.Is(err, cutover.ErrNotRetirable) {
		t.Errorf("Retire of a reverted move: %v, want ErrNotRetirable", err)
	}
}

// TestReverseGuardAndRetire: the guard drops a reverse stream whose
// source copy does not keep up, says so with an event, and Revert then
// refuses saying why; a move whose reverse stream cannot start is ended
// without one by a Resume with NoReverse; Retire of a move with a reverse
// stream leaves no slot, publication or subscription anywhere, and a
// retired move cannot be reverted.
func TestReverseGuardAndRetire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	must(t, f.AddTenant(ctx, "beta", "beta", "pg-a", shopSchema))
	must(t, f.AddTenant(ctx, "gamma", "gamma", "pg-a", shopSchema))
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, MaxReverseWAL: 256 << 10})
	must(t, err)

	// A target without a free replication slot for the reverse is
	// refused before anything is made.
	execIn(t, f, "pg-b", "postgres", `SELECT pg_create_physical_replication_slot('filler_' || g)
		FROM generate_series(1, current_setting('max_replication_slots')::int) g`)
	_, err = mover.Move(ctx, cutover.Request{ID: "no-slot", Tenant: "acme", Target: "pg-b"})
	if !errors.Is(err, cutover.ErrPreflight) || !strings.Contains(err.Error(), "reverse stream: target pg-b has no replication slot") {
		t.Errorf("move to a target without a free slot: %v, want ErrPreflight naming the reverse stream", err)
	}
	execIn(t, f, "pg-b", "postgres", `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'filler\_%'`)

	for _, tenant := range []string{"acme", "beta"} {
		if rep, err := mover.Move(ctx, cutover.Request{ID: "move-" + tenant, Tenant: tenant, Target: "pg-b"}); err != nil || !rep.Reverse {
			t.Fatalf("move %s: %v\n%s", tenant, err, rep)
		}
	}
	// beta cannot move on before its move is retired: the reverse slot
	// in its database would keep the next move from being retired.
	_, err = mover.Move(ctx, cutover.Request{ID: "beta-on", Tenant: "beta", Target: "pg-a"})
	if !errors.Is(err, cutover.ErrPreflight) || !strings.Contains(err.Error(), "holds the reverse slot") {
		t.Errorf("move of a tenant whose last move is not retired: %v, want ErrPreflight naming the reverse slot", err)
	}
	if n, err := mover.CheckReverse(ctx, "move-acme"); err != nil {
		t.Fatalf("CheckReverse within the bound: %d bytes, %v", n, err)
	}

	// The source copy of acme stops applying; the target writes on.
	execIn(t, f, "pg-a", "acme", "DO $$ DECLARE s text; BEGIN SELECT subname INTO s FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = 'acme'); EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', s); END $$")
	execIn(t, f, "pg-b", "acme", "INSERT INTO orders (customer_id, total) SELECT 1, g FROM generate_series(1, 20000) g")
	events, unsubscribe := mover.Subscribe(cutover.EventReverseDropped)
	n, err := mover.CheckReverse(ctx, "move-acme")
	unsubscribe()
	if !errors.Is(err, cutover.ErrNotRevertible) || !errors.Is(err, replica.ErrWALLimit) {
		t.Fatalf("CheckReverse over the bound (%d bytes): %v, want ErrNotRevertible and ErrWALLimit", n, err)
	}
	if len(events) != 1 {
		t.Errorf("%d reverse_dropped events, want 1", len(events))
	}
	if _, err := mover.Revert(ctx, "move-acme"); !errors.Is(err, cutover.ErrNotRevertible) {
		t.Errorf("Revert after the guard dropped the reverse: %v, want ErrNotRevertible", err)
	} else {
		t.Logf("Revert refused: %v", err)
	}

	// gamma's reverse cannot start: the move stays open after its switch,
	// and a Resume by a mover that makes no reverse streams ends it
	// without one.
	stuck, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
		if s == cutover.StepReverse {
			return errors.New("the source instance is lost")
		}
		return nil
	}})
	must(t, err)
	if _, err := stuck.Move(ctx, cutover.Request{ID: "move-gamma", Tenant: "gamma", Target: "pg-b"}); err == nil {
		t.Fatal("the move whose reverse cannot start is done")
	}
	noReverse, err := f.Mover(&cutover.Config{NoReverse: true})
	must(t, err)
	if rep, err := noReverse.Resume(ctx, "move-gamma"); err != nil {
		t.Fatalf("Resume with NoReverse: %v", err)
	} else if rep.RolledBack || rep.Reverse {
		t.Errorf("Resume with NoReverse: rolled back %v, reverse %v, want neither", rep.RolledBack, rep.Reverse)
	}
	if tn, err := f.Catalog.Locate(ctx, "gamma"); err != nil || tn.Instance != "pg-b" {
		t.Errorf("catalog after the resumed move: %+v, %v", tn, err)
	}
	if _, err := mover.Revert(ctx, "move-gamma"); !errors.Is(err, cutover.ErrNotRevertible) {
		t.Errorf("Revert of a move ended without its reverse: %v, want ErrNotRevertible", err)
	}
	assertReverseStreams(t, f, "pg-a", "pg-b", 1) // beta's only

	// Neither instance can be converted while beta's reverse stream runs.
	converting, err := f.Mover(&cutover.Config{Converter: f.Converter()})
	must(t, err)
	for instance, want := range map[string]string{"pg-b": "reverse slots of 1 move(s) into it", "pg-a": "reverse subscriptions of 1 move(s) out of it"} {
		_, err := converting.Convert(ctx, cutover.ConvertRequest{ID: "convert-" + instance, Instance: instance, NewInstance: instance + "-new"})
		if !errors.Is(err, cutover.ErrPreflight) || !strings.Contains(err.Error(), want) {
			t.Errorf("Convert of %s: %v, want ErrPreflight naming the %s", instance, err, want)
		}
	}

	for _, tenant := range []string{"acme", "beta", "gamma"} {
		must(t, mover.Retire(ctx, "move-"+tenant))
		if databaseExists(t, f, "pg-a", tenant) {
			t.Errorf("source database %s is still there after Retire", tenant)
		}
	}
	assertNoReplicationObjects(t, f)
	for _, db := range []string{"acme", "beta", "gamma"} {
		assertNoPublications(t, f, db)
	}
	if _, err := mover.Revert(ctx, "move-beta"); !errors.Is(err, cutover.ErrNotRevertible) {
		t.Errorf("Revert of a retired move: %v, want ErrNotRevertible", err)
	}
}

// assertNoPublications checks that no publication is left in database
// db on any instance of the fleet that has it.
func assertNoPublications(t *testing.T, f *cutovertest.Fleet, db string) {
	t.Helper()
	ctx := context.Background()
	for name := range f.Instances {
		if !databaseExists(t, f, name, db) {
			continue
		}
		conn, err := f.Instances[name].Connect(ctx, db)
		must(t, err)
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_publication").Scan(&n)
		conn.Close(ctx)
		must(t, err)
		if n != 0 {
			t.Errorf("%s: %d publications left in database %s", name, n, db)
		}
	}
}

// execIn runs sql in database db of an instance of the fleet.
func execIn(t *testing.T, f *cutovertest.Fleet, instance, db, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := f.Instances[instance].Connect(ctx, db)
	must(t, err)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %s: %v", instance, sql, err)
	}
}

// pgErrCode is the SQLSTATE of err, or "" when it has none.
func pgErrCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestReverseAfterTargetRestart: the target restarts after the switch and
// before the forward stream is finished (a checkpoint at shutdown keeps
// only the forward origin's remote position, so the origin forgets where
// its last change ended). The reverse still starts after the forward
// stream's changes: every write made on the target comes back to the
// source once, nothing else, and the revert loses nothing.
func TestReverseAfterTargetRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	restarted := false
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, BeforeStep: func(ctx context.Context, _ string, s cutover.Step) error {
		if s == cutover.StepFinishStream && !restarted {
			restarted = true
			return f.Instances["pg-b"].Restart(ctx)
		}
		return nil
	}})
	must(t, err)
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	waitForAcks(t, w, 20)
	rep, err := mover.Move(ctx, cutover.Request{ID: "move-1", Tenant: "acme", Target: "pg-b"})
	if err != nil {
		// The restart may cut the step's sessions: Resume finishes it.
		t.Logf("move: %v; resuming", err)
		if rep, err = mover.Resume(ctx, "move-1"); err != nil {
			t.Fatalf("resume: %v\n%s", err, rep)
		}
	}
	if !restarted || !rep.Reverse {
		t.Fatalf("restarted %v, reverse %v\n%s", restarted, rep.Reverse, rep)
	}
	waitForAcks(t, w, 50) // on the target, carried back by the reverse stream
	rev, err := mover.Revert(ctx, "move-1")
	if err != nil {
		t.Fatalf("revert: %v\n%s", err, rev)
	}
	stats := w.Stop()
	conn, err := f.Instances["pg-a"].Connect(ctx, "acme")
	must(t, err)
	defer conn.Close(ctx)
	if missing, err := w.Missing(ctx, conn); err != nil || missing != 0 {
		t.Errorf("%d of %d acknowledged writes missing on the source (%v)", missing, stats.Acknowledged, err)
	}
	var dups int
	must(t, conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT email FROM customers GROUP BY email HAVING count(*) > 1) d`).Scan(&dups))
	if dups != 0 {
		t.Errorf("%d customers twice on the source: the reverse sent the forward stream's changes back", dups)
	}
	if stats.Errors != 0 {
		t.Logf("application saw %d errors (the target restarted under it); first: %v", stats.Errors, stats.FirstError)
	}
}
