package fleetjobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
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
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestDrainJob: a drain enqueued as one job, run by two workers (River
// clients with Movers of their own, as two processes would have), moves
// every planned tenant off pg-a with applications writing (no error, no
// acknowledged write missing), retires each source copy, leaves no slot
// on pg-a, and never runs more moves out of pg-a, or into one target, at
// once than the Movers' MovesPerSource and MovesPerTarget allow, as the
// moves' journals show. The same drain ID with other arguments is refused.
func TestDrainJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, pool := startJobFleet(t, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-b", "pg-c"},
		Limits: fleet.Limits{MaxTenants: 3}}) // the plan spreads the tenants over pg-b and pg-c
	tenants := []string{"t1", "t2", "t3", "t4", "t5", "t6"}
	for _, tn := range tenants {
		if err := f.AddTenant(ctx, tn, tn, "pg-a", itemsSchema); err != nil {
			t.Fatal(err)
		}
	}
	workloads := map[string]*cutovertest.Workload{}
	for _, tn := range tenants[:2] {
		w := cutovertest.StartWorkload(f.Router, tn, 2)
		t.Cleanup(func() { w.Stop() })
		waitForAcks(t, w, 10)
		workloads[tn] = w
	}
	const perSource, perTarget = 2, 1
	var clients []*river.Client[pgx.Tx]
	for range 2 {
		mover, err := f.Mover(&cutover.Config{WindowBudget: time.Minute, LockWait: lockWait,
			MovesPerSource: perSource, MovesPerTarget: perTarget})
		if err != nil {
			t.Fatal(err)
		}
		planner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover})
		if err != nil {
			t.Fatal(err)
		}
		client, err := startWorker(ctx, pool, &fleetjobs.Config{Mover: mover, Journal: f.Journal, Planner: planner,
			BusySnooze: 200 * time.Millisecond, DrainPoll: time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Stop(context.Background()) })
		clients = append(clients, client)
	}

	args := fleetjobs.DrainArgs{DrainID: "drain-a", Instance: "pg-a", Threshold: drain.Threshold{MaxTenants: 1}, InFlight: 4}
	res, err := fleetjobs.Insert(ctx, clients[0], args, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := args
	other.Instance = "pg-b"
	if _, err := fleetjobs.Insert(ctx, clients[1], other, nil); !errors.Is(err, fleetjobs.ErrMoveIDConflict) {
		t.Errorf("the drain's ID with another instance: %v, want ErrMoveIDConflict", err)
	}
	job := waitFinalized(t, clients[0], res.Job.ID)
	if job.State != rivertype.JobStateCompleted {
		t.Fatalf("drain job %s: %v", job.State, job.Errors)
	}
	var out fleetjobs.FanOutOutput
	if err := json.Unmarshal(job.Output(), &out); err != nil {
		t.Fatalf("drain output %s: %v", job.Output(), err)
	}
	t.Logf("drain output: %+v", out)
	if out.Planned != len(tenants)-1 || len(out.Moved) != out.Planned || len(out.Failed) != 0 {
		t.Errorf("drain moved %d of %d planned (failed %v), want %d", len(out.Moved), out.Planned, out.Failed, len(tenants)-1)
	}

	type span struct {
		target     string
		start, end time.Time
	}
	var spans []span
	for _, tn := range out.Moved {
		moveID := "drain-a/" + tn
		entries, err := f.Journal.Entries(ctx, moveID)
		if err != nil {
			t.Fatal(err)
		}
		p, found, err := cutover.PlannedIn(moveID, entries)
		if err != nil || !found {
			t.Fatalf("plan of %s: %v", moveID, err)
		}
		var done time.Time
		for _, e := range entries {
			if e.Step == cutover.StepDone && e.Status == cutover.StatusFinished {
				done = e.At
			}
		}
		if last := entries[len(entries)-1]; last.Step != cutover.StepRetire || !last.Terminal() {
			t.Errorf("%s ends with %s %s, want its source retired", moveID, last.Step, last.Status)
		}
		spans = append(spans, span{p.Target, entries[0].At, done})
		assertOn(t, f, tn, p.Target)
		if localpgtest.HasDatabase(t, f.Instances["pg-a"], tn) {
			t.Errorf("the source copy of %s is still on pg-a", tn)
		}
		if w := workloads[tn]; w != nil {
			assertWrites(t, w, tn, f.Instances[p.Target].Connect)
		}
	}
	// At each move's start, count the moves running out of pg-a (all of
	// them) and into its target.
	maxOut, maxIn := 0, 0
	for _, s := range spans {
		out, in := 0, 0
		for _, o := range spans {
			if !o.start.After(s.start) && o.end.After(s.start) {
				out++
				if o.target == s.target {
					in++
				}
			}
		}
		maxOut, maxIn = max(maxOut, out), max(maxIn, in)
	}
	t.Logf("at most %d moves ran out of pg-a at once, %d into one target", maxOut, maxIn)
	if maxOut > perSource || maxIn > perTarget || maxOut < 2 {
		t.Errorf("%d moves ran out of pg-a at once and %d into one target, want at most %d and %d (and two at once, one into each target)",
			maxOut, maxIn, perSource, perTarget)
	}
	admin, err := f.Instances["pg-a"].Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var slots int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Errorf("%d replication slots left on pg-a", slots)
	}
	if open, err := f.Journal.Open(ctx, cutover.KindDrain); err != nil || slices.Contains(open, "drain-a") {
		t.Errorf("open drains %v (%v), want drain-a over", open, err)
	}
}
