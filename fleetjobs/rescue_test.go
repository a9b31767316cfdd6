package fleetjobs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// TestRescuedJobResumesOnAnotherWorker: a worker process dies (SIGKILL)
// in the middle of a move job, after the switch; River's rescuer, in
// another worker process configured with a short RescueStuckJobsAfter,
// makes the job available again, and the second attempt resumes the move
// from the journal: the job completes on the second worker, the tenant is
// on the target, no acknowledged write is missing, no move is left open.
func TestRescuedJobResumesOnAnotherWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a worker process and waits for River's rescuer")
	}
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, nil) // a control database of its own: its own River leader
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	const tenant, moveID = "rescued", "move-rescued"
	if err := f.AddTenant(ctx, tenant, tenant, "pg-a", itemsSchema); err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, tenant, 2)
	t.Cleanup(func() { w.Stop() })
	waitForAcks(t, w, 10)

	pool, err := pgxpool.New(ctx, f.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := fleetjobs.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := fleetjobs.Insert(ctx, inserter, fleetjobs.MoveArgs{MoveID: moveID, Tenant: tenant, Target: "pg-b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cutovertest.KillChildAt(t, "TestKilledMoverChild", killedMoverEnv,
		killedMover{ControlURL: f.URL, Step: cutover.StepVerify, AsWorker: true})

	mover, err := f.Mover(&cutover.Config{WindowBudget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// River rescues the dead worker's job once it has run longer than
	// this worker's MoveTimeout and RescueStuckJobsAfter: seconds here,
	// as the test's moves take seconds. (JobTimeout only has to be below
	// RescueStuckJobsAfter; daisychain's workers set their own.)
	client, err := startWorker(ctx, pool, &fleetjobs.Config{Mover: mover, Journal: f.Journal, MoveTimeout: 10 * time.Second},
		&river.Config{JobTimeout: time.Second, RescueStuckJobsAfter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Stop(ctx)

	job := waitFinalized(t, client, res.Job.ID)
	assertOutput(t, job, fleetjobs.DecisionResumed)
	if job.Attempt < 2 || !strings.Contains(fmt.Sprint(job.Errors), "rescued") {
		t.Errorf("job %d completed at attempt %d with errors %v, want a rescue and a second attempt", job.ID, job.Attempt, job.Errors)
	}
	assertSettled(t, f, w, moveID, tenant, "pg-b")
}

// startWorker starts a worker process's River client over the control
// database pool connects to, running daisychain's jobs on the default
// queue; base, if not nil, sets the rest of its configuration.
func startWorker(ctx context.Context, pool *pgxpool.Pool, cfg *fleetjobs.Config, base *river.Config) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	if err := fleetjobs.Register(workers, cfg); err != nil {
		return nil, err
	}
	rc := river.Config{}
	if base != nil {
		rc = *base
	}
	rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}}
	rc.Workers = workers
	rc.FetchPollInterval = 100 * time.Millisecond
	client, err := river.NewClient(riverpgxv5.New(pool), &rc)
	if err != nil {
		return nil, err
	}
	if err := client.Start(ctx); err != nil {
		return nil, errors.Join(err, client.Stop(context.WithoutCancel(ctx)))
	}
	return client, nil
}
