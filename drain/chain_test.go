package drain_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
)

// chainFleet starts pg-a and pg-b with three tenants each, under writes,
// and an empty spare, every instance limited to four tenants.
func chainFleet(t *testing.T) (*cutovertest.Fleet, []*cutovertest.Workload) {
	t.Helper()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{
		Instances: []string{"pg-a", "pg-b", "pg-s"},
		Limits:    fleet.Limits{MaxTenants: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var workloads []*cutovertest.Workload
	for i := range 6 {
		id := fmt.Sprintf("t%d", i)
		inst := "pg-a"
		if i >= 3 {
			inst = "pg-b"
		}
		if err := f.AddTenant(ctx, id, id, inst, "CREATE TABLE items (id serial PRIMARY KEY, v text)"); err != nil {
			t.Fatal(err)
		}
		workloads = append(workloads, cutovertest.StartWorkload(f.Router, id, 1))
	}
	return f, workloads
}

// checkChainEnd: every tenant on a converted instance, the spare empty,
// every acknowledged write where its tenant lives, no application error.
func checkChainEnd(t *testing.T, f *cutovertest.Fleet, workloads []*cutovertest.Workload) {
	t.Helper()
	ctx := context.Background()
	if on, err := f.Catalog.Tenants(ctx, "pg-s"); err != nil || len(on) != 0 {
		t.Errorf("the spare holds %d tenants after the chain (%v), want 0", len(on), err)
	}
	for i, w := range workloads {
		stats := w.Stop()
		id := fmt.Sprintf("t%d", i)
		tn, err := f.Catalog.Locate(ctx, id)
		if err != nil || (tn.Instance != "pg-a.1" && tn.Instance != "pg-b.1") {
			t.Errorf("%s is on %q (%v), want a converted instance", id, tn.Instance, err)
			continue
		}
		inst, _ := f.Catalog.Instance(ctx, tn.Instance)
		replica := f.ReplicaInstance(inst.Endpoint.Port)
		if replica == nil {
			t.Fatalf("no local instance for %s", tn.Instance)
		}
		conn, err := replica.Connect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		missing, err := w.Missing(ctx, conn)
		conn.Close(ctx)
		if err != nil || missing != 0 || stats.Errors != 0 {
			t.Errorf("%s: %d of %d writes missing (%v), %d application errors (%v)", id, missing, stats.Acknowledged, err, stats.Errors, stats.FirstError)
		}
	}
}

// TestChainUnderWrites runs the daisy chain over two instances with one
// spare, under writes to every tenant.
func TestChainUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, workloads := chainFleet(t)
	mover, err := f.Mover(&cutover.Config{Converter: f.Converter(), WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Journal: f.Journal})
	if err != nil {
		t.Fatal(err)
	}
	req := drain.ChainRequest{ID: "chain-1", Instances: []string{"pg-a", "pg-b"},
		Spares: []string{"pg-s"}, Threshold: drain.Threshold{MaxTenants: 1}}
	plan, err := runner.DryRunChain(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run:\n%s", plan)
	if len(plan.Stages) != 2 || len(plan.Stages[0].Drain.Moves) != 2 || plan.PeakSpare.Tenants > 4 {
		t.Errorf("dry run: %s", plan)
	}
	if open := openJournals(t, f); len(open) != 0 {
		t.Errorf("a dry run journaled: %v", open)
	}
	res, err := runner.Chain(ctx, req)
	if err != nil {
		t.Fatalf("chain: %v", err)
	}
	t.Logf("%s", res)
	if len(res.Stages) != 2 {
		t.Fatalf("%d stages, want 2", len(res.Stages))
	}
	for _, s := range res.Stages {
		if s.Convert == nil || s.Convert.RolledBack || len(s.Drain.Moved) != 2 {
			t.Errorf("stage %s: drained %v, convert %v", s.Instance, s.Drain, s.Convert)
		}
	}
	checkChainEnd(t, f, workloads)
	if open := openJournals(t, f); len(open) != 0 {
		t.Errorf("open moves after the chain: %v", open)
	}
}
