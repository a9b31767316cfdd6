package fleetjobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// rescueWorkerEnv carries a rescueWorker to a re-run of this test binary.
const rescueWorkerEnv = "FLEETJOBS_RESCUE_WORKER"

type rescueWorker struct {
	ControlURL string       `json:"control_url"`
	Step       cutover.Step `json:"step"`
}

// TestRescueWorkerChild is the child of TestRescuedJobResumesOnAnotherWorker:
// a worker process whose River client takes the move job and is killed
// once the move has journaled the chosen step as started.
func TestRescueWorkerChild(t *testing.T) {
	var c rescueWorker
	if !cutovertest.ChildArg(t, rescueWorkerEnv, &c) {
		t.Skip("the child of TestRescuedJobResumesOnAnotherWorker: it runs in the process that test starts")
	}
	ctx := context.Background()
	control, err := cutovertest.OpenControl(ctx, c.ControlURL)
	if err != nil {
		t.Fatal(err)
	}
	mover, err := control.Mover(&cutover.Config{
		WindowBudget: time.Minute,
		BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
			if s == c.Step {
				cutovertest.Reached(string(s)) // and wait for SIGKILL
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, c.ControlURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startWorker(ctx, pool, &fleetjobs.Config{Mover: mover, Journal: control.Journal}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Minute) // the parent kills this process long before
	fmt.Printf("WORKER NEVER REACHED %s\n", c.Step)
	os.Exit(3)
}

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
	res, err := fleetjobs.InsertMove(ctx, inserter, fleetjobs.MoveArgs{MoveID: moveID, Tenant: tenant, Target: "pg-b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cutovertest.KillChildAt(t, "TestRescueWorkerChild", rescueWorkerEnv, rescueWorker{ControlURL: f.URL, Step: cutover.StepVerify})

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
	waitForAcks(t, w, 10)
	stats := w.Stop()
	tn, err := f.Catalog.Locate(ctx, tenant)
	if err != nil || tn.Instance != "pg-b" {
		t.Errorf("catalog has %s on %q (%v), want pg-b", tenant, tn.Instance, err)
	}
	route, err := f.Routes.Resolve(ctx, tenant)
	if err != nil || route.Instance != "pg-b" || route.Paused {
		t.Errorf("route of %s: %+v (%v), want pg-b unpaused", tenant, route, err)
	}
	conn, err := f.Instances["pg-b"].Connect(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := w.Missing(ctx, conn)
	conn.Close(ctx)
	if err != nil || missing != 0 {
		t.Errorf("%d of %d acknowledged writes missing on pg-b (%v)", missing, stats.Acknowledged, err)
	}
	if open, err := f.Journal.Open(ctx, cutover.KindMove); err != nil || len(open) != 0 {
		t.Errorf("open moves after the job: %v (%v), want none", open, err)
	}
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
