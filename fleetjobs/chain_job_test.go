package fleetjobs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// TestChainJob: a daisy chain enqueued as one job, over two workers, runs
// its stages as jobs (drain onto the spare, conversion, refill of the
// converted instance): every tenant ends on the converted instance (route
// and catalog), the spare is empty, no acknowledged write is missing and
// the applications see no error; no move, drain or chain is left open,
// the chain's journal is a chain's (drain.ResumeChain says what resumes
// it), and enqueueing the chain again runs nothing.
func TestChainJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, pool := startJobFleet(t, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-s"}, Limits: fleet.Limits{MaxTenants: 4}})
	workloads := map[string]*cutovertest.Workload{}
	for i := range 3 {
		tn := fmt.Sprintf("c%d", i)
		if err := f.AddTenant(ctx, tn, tn, "pg-a", itemsSchema); err != nil {
			t.Fatal(err)
		}
		w := cutovertest.StartWorkload(f.Router, tn, 1)
		t.Cleanup(func() { w.Stop() })
		workloads[tn] = w
	}
	var clients []*river.Client[pgx.Tx]
	var runner *drain.Runner
	for range 2 {
		mover, err := f.Mover(&cutover.Config{Converter: f.Converter(), WindowBudget: 30 * time.Second, LockWait: lockWait})
		if err != nil {
			t.Fatal(err)
		}
		if runner, err = drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Journal: f.Journal}); err != nil {
			t.Fatal(err)
		}
		client, err := startWorker(ctx, pool, &fleetjobs.Config{Mover: mover, Journal: f.Journal, Planner: runner,
			BusySnooze: 200 * time.Millisecond, DrainPoll: time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Stop(context.Background()) })
		clients = append(clients, client)
	}
	args := fleetjobs.ChainArgs{ChainID: "chain-jobs", Instances: []string{"pg-a"}, Spares: []string{"pg-s"},
		Threshold: drain.Threshold{MaxTenants: 1}}
	res, err := fleetjobs.Insert(ctx, clients[0], args, nil)
	if err != nil {
		t.Fatal(err)
	}
	job := waitFinalized(t, clients[1], res.Job.ID)
	if job.State != rivertype.JobStateCompleted {
		t.Fatalf("chain job %s: %v", job.State, job.Errors)
	}
	entries, err := f.Journal.Entries(ctx, "chain-jobs")
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range entries {
		if e.Status == cutover.StatusFinished {
			steps = append(steps, string(e.Step))
		}
	}
	if got, want := strings.Join(steps, " "), "plan chain_drain chain_convert chain_refill done"; got != want || entries[0].Kind != cutover.KindChain {
		t.Errorf("the chain's journal (%s) finished %q, want %q", entries[0].Kind, got, want)
	}
	if on, err := f.Catalog.Tenants(ctx, "pg-s"); err != nil || len(on) != 0 {
		t.Errorf("the spare holds %d tenants after the chain (%v), want 0", len(on), err)
	}
	converted, err := f.Catalog.Instance(ctx, "pg-a.1")
	if err != nil {
		t.Fatal(err)
	}
	for tn, w := range workloads {
		assertOn(t, f, tn, "pg-a.1")
		assertWrites(t, w, tn, f.ReplicaInstance(converted.Endpoint.Port).Connect)
	}
	for _, k := range []cutover.Kind{cutover.KindMove, cutover.KindDrain, cutover.KindChain} {
		if open, err := f.Journal.Open(ctx, k); err != nil || len(open) != 0 {
			t.Errorf("open %s journals after the chain: %v (%v)", k, open, err)
		}
	}
	if _, err := runner.ResumeChain(ctx, "chain-jobs"); !errors.Is(err, drain.ErrInvalid) || !strings.Contains(err.Error(), "fleetjobs") {
		t.Errorf("drain.ResumeChain of a chain run as jobs: %v, want ErrInvalid naming what resumes it", err)
	}
	again, err := fleetjobs.Insert(ctx, clients[0], args, nil)
	if err != nil || !again.UniqueSkippedAsDuplicate {
		t.Errorf("the chain enqueued again: %+v, %v; want the completed job, nothing new", again, err)
	}
}
