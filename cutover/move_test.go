package cutover_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

const shopSchema = `
CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, total int NOT NULL);
CREATE INDEX orders_customer ON orders (customer_id);
INSERT INTO customers (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, 500) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 500, g FROM generate_series(1, 2000) g;
`

func startFleet(t *testing.T) *cutovertest.Fleet {
	t.Helper()
	f, err := cutovertest.StartFleet(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := f.AddTenant(context.Background(), "acme", "acme", "pg-a", shopSchema); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestMoveUnderWrites: a tenant moves while an application writes through
// the Router on several connections: no application error, every
// acknowledged write on the target, the route and the catalog on the
// target, no replication object left.
func TestMoveUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	events, unsubscribe := mover.Subscribe(cutover.EventWindowOpened, cutover.EventWindowClosed, cutover.EventStepFinished)
	w := cutovertest.StartWorkload(f.Router, "acme", 4)
	waitForAcks(t, w, 20)
	rep, err := mover.Move(ctx, cutover.Request{ID: "move-1", Tenant: "acme", Target: "pg-b"})
	unsubscribe()
	var kinds []string
	for e := range events {
		if e.Kind == cutover.EventStepFinished {
			kinds = append(kinds, string(e.Step))
		} else {
			kinds = append(kinds, string(e.Kind))
		}
	}
	if got := strings.Join(kinds, " "); !strings.Contains(got, "catch_up reverse_prepare window_opened pause quiesce fence barrier wait_target reverse_start sync_sequences snapshot window_closed switch catalog verify finish_stream reverse done") {
		t.Errorf("events: %s", got)
	}
	if err != nil {
		t.Fatalf("move: %v\n%s", err, rep)
	}
	waitForAcks(t, w, 20) // writes go on, on the target
	stats := w.Stop()
	t.Logf("%s", rep)
	t.Logf("application: %d acknowledged writes, %d errors, longest gap %s", stats.Acknowledged, stats.Errors, stats.MaxGap)
	if stats.Errors != 0 {
		t.Errorf("application saw %d errors; first: %v", stats.Errors, stats.FirstError)
	}
	target, err := f.Instances["pg-b"].Connect(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close(ctx)
	missing, err := w.Missing(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if missing != 0 || stats.Acknowledged == 0 {
		t.Errorf("%d of %d acknowledged writes missing on the target", missing, stats.Acknowledged)
	}
	route, err := f.Routes.Resolve(ctx, "acme")
	if err != nil || route.Instance != "pg-b" || route.Paused {
		t.Errorf("route after the move: %v, %v", route, err)
	}
	if tn, err := f.Catalog.Locate(ctx, "acme"); err != nil || tn.Instance != "pg-b" {
		t.Errorf("catalog after the move: %+v, %v", tn, err)
	}
	assertReverseStreams(t, f, "pg-a", "pg-b", 1)
	if rep.RolledBack || rep.Window <= 0 || !rep.Reverse {
		t.Errorf("report: rolled back %v, window %s", rep.RolledBack, rep.Window)
	}
	if strings.Contains(rep.String(), "secret") {
		t.Error("the report shows a password")
	}

	// The source copy stays, fenced, until the move is retired.
	if !databaseExists(t, f, "pg-a", "acme") {
		t.Fatal("the source database is gone before Retire")
	}
	for range 2 { // Retire is idempotent
		if err := mover.Retire(ctx, "move-1"); err != nil {
			t.Fatal(err)
		}
	}
	if databaseExists(t, f, "pg-a", "acme") {
		t.Error("the source database is still there after Retire")
	}
	assertNoReplicationObjects(t, f) // Retire ended the reverse stream
	// And the tenant can move back, under writes again.
	w = cutovertest.StartWorkload(f.Router, "acme", 4)
	rep, err = mover.Move(ctx, cutover.Request{ID: "move-2", Tenant: "acme", Target: "pg-a"})
	stats = w.Stop()
	if err != nil || stats.Errors != 0 {
		t.Fatalf("move back: %v; application errors %d (%v)", err, stats.Errors, stats.FirstError)
	}
	back, err := f.Instances["pg-a"].Connect(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close(ctx)
	if missing, err := w.Missing(ctx, back); err != nil || missing != 0 {
		t.Errorf("move back: %d acknowledged writes missing (%v)", missing, err)
	}
}

func TestRetireRefusesWhatIsNotDone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(&cutover.Config{BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
		if s == cutover.StepSwitch {
			return errors.New("no")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mover.Move(ctx, cutover.Request{ID: "m", Tenant: "acme", Target: "pg-b"}); !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatal(err)
	}
	if err := mover.Retire(ctx, "m"); !errors.Is(err, cutover.ErrNotRetirable) {
		t.Errorf("Retire of a rolled-back move: %v, want ErrNotRetirable", err)
	}
	if err := mover.Retire(ctx, "unknown"); !errors.Is(err, cutover.ErrMoveNotFound) {
		t.Errorf("Retire of an unknown move: %v, want ErrMoveNotFound", err)
	}
	if !databaseExists(t, f, "pg-a", "acme") {
		t.Error("a refused Retire dropped the source")
	}
}

// waitForAcks waits until the workload has n more acknowledged writes,
// or fails the test.
func waitForAcks(t *testing.T, w *cutovertest.Workload, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WaitForAcks(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func databaseExists(t *testing.T, f *cutovertest.Fleet, instance, db string) bool {
	t.Helper()
	return localpgtest.HasDatabase(t, f.Instances[instance], db)
}

func assertNoReplicationObjects(t *testing.T, f *cutovertest.Fleet) {
	t.Helper()
	assertReverseStreams(t, f, "", "", 0)
}

// assertReverseStreams: the replication objects are those of n reverse
// streams from target to source, which done moves leave until they are
// retired: n slots on target, n subscriptions on source, nothing else.
func assertReverseStreams(t *testing.T, f *cutovertest.Fleet, source, target string, n int) {
	t.Helper()
	ctx := context.Background()
	for name, inst := range f.Instances {
		conn, err := inst.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		var slots, subs int
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_subscription)`).Scan(&slots, &subs); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		var wantSlots, wantSubs int
		switch name {
		case source:
			wantSubs = n
		case target:
			wantSlots = n
		}
		if slots != wantSlots || subs != wantSubs {
			t.Errorf("%s: %d replication slots and %d subscriptions, want %d and %d", name, slots, subs, wantSlots, wantSubs)
		}
	}
}

// TestOneMoverPerTenant: while a move of a tenant runs, another Move of it
// and a Resume of the running move (from another mover, as another
// process would) are refused.
func TestOneMoverPerTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	reached, release := make(chan struct{}), make(chan struct{})
	first, err := f.Mover(&cutover.Config{BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
		if s == cutover.StepCatchUp {
			close(reached)
			<-release
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := first.Move(ctx, cutover.Request{ID: "first", Tenant: "acme", Target: "pg-b"})
		done <- err
	}()
	<-reached
	second, err := f.Mover(&cutover.Config{LockWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Move(ctx, cutover.Request{ID: "second", Tenant: "acme", Target: "pg-b"}); !errors.Is(err, cutover.ErrMoveInProgress) {
		t.Errorf("a second Move during the first: %v, want ErrMoveInProgress", err)
	}
	if _, err := second.Resume(ctx, "first"); !errors.Is(err, cutover.ErrMoveInProgress) {
		t.Errorf("Resume of a running move: %v, want ErrMoveInProgress", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the first move: %v", err)
	}
	if _, err := f.Journal.Entries(ctx, "second"); !errors.Is(err, cutover.ErrMoveNotFound) {
		t.Errorf("the refused move was journaled: %v", err)
	}
}
