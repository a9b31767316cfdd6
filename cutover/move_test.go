package cutover_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/flags"
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
	w := cutovertest.StartWorkload(f.Router, "acme", 4)
	time.Sleep(300 * time.Millisecond)
	rep, err := mover.Move(ctx, cutover.Request{ID: "move-1", Tenant: "acme", Target: "pg-b"})
	time.Sleep(300 * time.Millisecond)
	stats := w.Stop()
	if err != nil {
		t.Fatalf("move: %v\n%s", err, rep)
	}
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
	assertNoReplicationObjects(t, f)
	if rep.RolledBack || rep.Window <= 0 {
		t.Errorf("report: rolled back %v, window %s", rep.RolledBack, rep.Window)
	}
	if strings.Contains(rep.String(), "secret") {
		t.Error("the report shows a password")
	}
}

func assertNoReplicationObjects(t *testing.T, f *cutovertest.Fleet) {
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
		if slots != 0 || subs != 0 {
			t.Errorf("%s: %d replication slots and %d subscriptions left", name, slots, subs)
		}
	}
}

var _ = errors.Is
var _ = flags.RouteFlagKey
