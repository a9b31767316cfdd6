package drain_test

import (
	"context"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
)

// TestDrainKeepingSources: a drain that keeps each moved tenant's source
// copy for the rollback period succeeds once its moves are done: the
// copies still count in what is on disk (Result.After), but the
// threshold is checked as Retire will leave the instance.
func TestDrainKeepingSources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-b"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for _, id := range []string{"t1", "t2", "t3"} {
		if err := f.AddTenant(ctx, id, id, "pg-a", ""); err != nil {
			t.Fatal(err)
		}
	}
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, KeepSources: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runner.Drain(ctx, "pg-a", drain.Threshold{MaxTenants: 1}, nil)
	if err != nil {
		t.Fatalf("drain keeping its sources: %v", err)
	}
	if len(res.Moved) != 2 || res.After.Tenants != 3 {
		t.Errorf("moved %d, pg-a holds %d databases on disk; want 2 moved and 3 on disk (1 tenant, 2 kept copies)", len(res.Moved), res.After.Tenants)
	}
	if n := databasesOnDisk(t, f, "pg-a"); n != 3 {
		t.Errorf("pg-a has %d tenant databases on disk; want the tenant left and the two kept copies", n)
	}
	for _, m := range res.Moved {
		if err := mover.Retire(ctx, m.Report.Move); err != nil {
			t.Errorf("retire %s: %v", m.Report.Move, err)
		}
	}
	if n := databasesOnDisk(t, f, "pg-a"); n != 1 {
		t.Errorf("after Retire pg-a has %d tenant databases on disk; want one", n)
	}
}

// databasesOnDisk counts the tenant databases on the instance, fenced
// ones (which refuse connections) included.
func databasesOnDisk(t *testing.T, f *cutovertest.Fleet, instance string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := f.Instances[instance].Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname LIKE 't%' AND NOT datistemplate`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
