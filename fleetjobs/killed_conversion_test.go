package fleetjobs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// TestChainTakesOverKilledConversion: a chain's conversion job whose
// worker is killed in the conversion's window, with every tenant of the
// instance paused and fenced, is taken over by a new job at the chain's
// next round, not after MoveTimeout (an hour here, as River's rescue):
// the conversion is rolled back (its replica died with the worker), the
// chain is cancelled naming the stage, the tenants are served by their
// instance again with no write lost and no application error; enqueued
// again, the chain converts the instance.
func TestChainTakesOverKilledConversion(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a worker process")
	}
	t.Parallel()
	ctx := context.Background()
	f, pool := startJobFleet(t, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-s"}, Limits: fleet.Limits{MaxTenants: 4}})
	workloads := map[string]*cutovertest.Workload{}
	for i := range 2 {
		tn := fmt.Sprintf("kc%d", i)
		if err := f.AddTenant(ctx, tn, tn, "pg-a", itemsSchema); err != nil {
			t.Fatal(err)
		}
		w := cutovertest.StartWorkload(f.Router, tn, 1)
		t.Cleanup(func() { w.Stop() })
		waitForAcks(t, w, 5)
		workloads[tn] = w
	}
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing to drain under this threshold: the chain goes straight to
	// the conversion.
	args := fleetjobs.ChainArgs{ChainID: "chain-kc", Instances: []string{"pg-a"}, Spares: []string{"pg-s"},
		Threshold: drain.Threshold{MaxTenants: 2}}
	res, err := fleetjobs.Insert(ctx, inserter, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	cutovertest.KillChildAt(t, "TestKilledMoverChild", killedMoverEnv,
		killedMover{ControlURL: f.URL, Step: cutover.StepWaitTarget, AsWorker: true, Only: "-convert", Converts: true})

	mover, err := f.Mover(&cutover.Config{Converter: f.Converter(), WindowBudget: 30 * time.Second, LockWait: lockWait})
	if err != nil {
		t.Fatal(err)
	}
	planner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Journal: f.Journal})
	if err != nil {
		t.Fatal(err)
	}
	// The conversion's job would be rescued by River only after
	// MoveTimeout (an hour); the chain's own job, if the worker died in
	// one of its rounds, after FanOutTimeout (River rescues a job once it
	// has run longer than both its worker's timeout and
	// RescueStuckJobsAfter).
	client, err := startWorker(ctx, pool, &fleetjobs.Config{Mover: mover, Journal: f.Journal, Planner: planner,
		MoveTimeout: time.Hour, BusySnooze: 200 * time.Millisecond, DrainPoll: time.Second, TakeoverAfter: takeoverAfter,
		FanOutTimeout: fanOutTimeout}, &river.Config{JobTimeout: time.Second, RescueStuckJobsAfter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Stop(ctx)
	job := waitFinalized(t, client, res.Job.ID)
	if job.State != rivertype.JobStateCancelled || len(job.Errors) == 0 ||
		!strings.Contains(job.Errors[len(job.Errors)-1].Error, "chain_convert") {
		t.Fatalf("chain job %s (%v), want cancelled by its failed conversion", job.State, job.Errors)
	}
	entries, err := f.Journal.Entries(ctx, "chain-kc/0-convert")
	if err != nil {
		t.Fatal(err)
	}
	if last := entries[len(entries)-1]; last.Step != cutover.StepRolledBack {
		t.Errorf("the killed conversion ends with %s, want rolled back: %s", last.Step, stepsOf(entries))
	}
	convs, err := client.JobList(ctx, river.NewJobListParams().Kinds(fleetjobs.KindConvert))
	if err != nil {
		t.Fatal(err)
	}
	if len(convs.Jobs) != 2 {
		t.Errorf("%d conversion jobs, want the killed one and its takeover", len(convs.Jobs))
	}
	for tn := range workloads {
		assertOn(t, f, tn, "pg-a")
	}

	// Enqueued again, the chain retries the stage and converts.
	res, err = fleetjobs.Insert(ctx, inserter, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	if job := waitFinalized(t, client, res.Job.ID); job.State != rivertype.JobStateCompleted {
		t.Fatalf("chain enqueued again: %s (%v)", job.State, job.Errors)
	}
	converted, err := f.Catalog.Instance(ctx, "pg-a.1")
	if err != nil {
		t.Fatal(err)
	}
	for tn, w := range workloads {
		assertOn(t, f, tn, "pg-a.1")
		assertWrites(t, w, tn, f.ReplicaInstance(converted.Endpoint.Port).Connect)
	}
}
