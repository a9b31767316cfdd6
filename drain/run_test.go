package drain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
)

// TestDrainUnderWrites drains an instance of five tenants to two, under
// writes to every tenant, onto instances whose limits leave room for
// exactly three: it stops at the threshold, no limit is passed, every
// acknowledged write is where its tenant now lives, and the moved
// tenants' source copies are gone. A second drain that cannot fit is
// refused and moves nothing.
func TestDrainUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-b", "pg-c"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for id, max := range map[string]int64{"pg-b": 2, "pg-c": 1} {
		inst, err := f.Catalog.Instance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		inst.Limits.MaxTenants = max
		if err := f.Catalog.RegisterInstance(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	var workloads []*cutovertest.Workload
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("t%d", i)
		schema := fmt.Sprintf("CREATE TABLE items (id serial PRIMARY KEY, v text); INSERT INTO items (v) SELECT repeat('x', %d) FROM generate_series(1, 100)", i*100)
		if err := f.AddTenant(ctx, id, id, "pg-a", schema); err != nil {
			t.Fatal(err)
		}
		workloads = append(workloads, cutovertest.StartWorkload(f.Router, id, 1))
	}
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	events, stop := runner.Subscribe(drain.EventProgress)
	res, err := runner.Drain(ctx, "pg-a", drain.Threshold{MaxTenants: 2}, nil)
	stop()
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	// Progress as the moves start, then after each, with the time left
	// from the moves' estimates: at first the plan's; after the first
	// move, at least the third's (not started while the first holds its
	// slot); nothing at the end.
	var progress []*drain.Event
	for e := range events {
		progress = append(progress, e)
		if e.Total != 3 {
			t.Errorf("progress event with total %d, want 3", e.Total)
		}
	}
	if len(res.Moved) != 3 || len(progress) != 4 || res.After.Tenants != 2 || res.Before.Tenants != 5 {
		t.Fatalf("moved %d (progress events %d), pg-a %d -> %d tenants; want 3 moves, 4 events, 5 -> 2", len(res.Moved), len(progress), res.Before.Tenants, res.After.Tenants)
	}
	if e := progress[0]; e.Done != 0 || e.ETA != res.Plan.Estimate || e.ETA <= 0 {
		t.Errorf("first progress event: %d done, ETA %s; want 0 done and the plan's estimate, %s", e.Done, e.ETA, res.Plan.Estimate)
	}
	if e := progress[1]; e.Done+e.Failed != 1 || e.ETA <= 0 {
		t.Errorf("progress after the first move: %d done, ETA %s; want 1 done and time left for the third", e.Done+e.Failed, e.ETA)
	}
	if e := progress[3]; e.Done != 3 || e.ETA != 0 {
		t.Errorf("last progress event: %d done, ETA %s; want 3 done, nothing left", e.Done, e.ETA)
	}
	for id, max := range map[string]int{"pg-a": 2, "pg-b": 2, "pg-c": 1} {
		on, err := f.Catalog.Tenants(ctx, id)
		if err != nil || len(on) != max {
			t.Errorf("%s holds %d tenants (%v), want %d", id, len(on), err, max)
		}
		dbs := databases(t, f, id)
		if len(dbs) != max {
			t.Errorf("%s has tenant databases %v, want %d: moved tenants' sources are retired", id, dbs, max)
		}
	}
	for i, w := range workloads {
		stats := w.Stop()
		id := fmt.Sprintf("t%d", i+1)
		tn, _ := f.Catalog.Locate(ctx, id)
		conn, err := f.Instances[tn.Instance].Connect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		missing, err := w.Missing(ctx, conn)
		conn.Close(ctx)
		if err != nil || missing != 0 || stats.Errors != 0 {
			t.Errorf("%s on %s: %d of %d writes missing (%v), %d application errors (%v)",
				id, tn.Instance, missing, stats.Acknowledged, err, stats.Errors, stats.FirstError)
		}
	}

	// A refill's dry run: pg-c is full, so nothing would move onto it.
	if plan, err := runner.DryRunRefill(ctx, "pg-c", []string{"pg-a"}, drain.Threshold{}, nil); err != nil || len(plan.Moves) != 0 {
		t.Errorf("refill dry run onto a full instance: %v, %v", plan, err)
	}

	// Nothing fits any more: refused, nothing moves.
	open, _ := f.Journal.Open(ctx, cutover.KindMove)
	res, err = runner.Drain(ctx, "pg-a", drain.Threshold{MaxTenants: 1}, nil)
	var pe *drain.PlacementError
	if !errors.As(err, &pe) || !errors.Is(err, drain.ErrUnplaced) || !strings.Contains(err.Error(), "max_tenants") {
		t.Fatalf("drain with no room: %v, want a PlacementError naming max_tenants", err)
	}
	if len(res.Moved)+len(res.Failed) != 0 {
		t.Errorf("a refused drain moved %d tenants", len(res.Moved)+len(res.Failed))
	}
	if on, _ := f.Catalog.Tenants(ctx, "pg-a"); len(on) != 2 {
		t.Errorf("pg-a holds %d tenants after a refused drain, want 2", len(on))
	}
	if after, _ := f.Journal.Open(ctx, cutover.KindMove); len(after) != len(open) {
		t.Errorf("a refused drain journaled moves: %v", after)
	}
}

// databases lists the tenant databases on an instance.
func databases(t *testing.T, f *cutovertest.Fleet, instance string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := f.Instances[instance].Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	dbs, err := fleet.DiscoverDatabases(ctx, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dbs
}
