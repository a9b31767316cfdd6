package fleetjobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleetjobs"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// fanOutTimeout is short so that River rescues, within the test, a drain
// job whose worker died in one of its rounds.
const fanOutTimeout = 3 * time.Second

// takeoverAfter is short, above the test Movers' lockWait, so that a move
// job killed before its move journaled anything is taken over within the
// test.
const takeoverAfter = 3 * time.Second

// killSteps are the steps a worker is killed at: in the copy, around the
// window, after the switch, in the retire.
var killSteps = []cutover.Step{cutover.StepStream, cutover.StepCatchUp, cutover.StepFence, cutover.StepWaitTarget,
	cutover.StepSwitch, cutover.StepVerify, cutover.StepFinishStream, cutover.StepRetire}

// TestDrainSurvivesKilledWorker: a drain job runs on a worker process that
// is killed (SIGKILL) at a random step of one of its moves; another worker
// takes the drain up. In each of several runs, every planned move ends
// done or rolled back, each tenant is served by exactly one instance (its
// route and catalog agree, unpaused, and the other side's copy is gone),
// no acknowledged write is missing, the applications see no error, each
// move was planned once (no two workers ran it), and no replication slot
// or subscription is left. DAISYCHAIN_KILL_SEED replays a run's choices.
func TestDrainSurvivesKilledWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("kills worker processes")
	}
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("DAISYCHAIN_KILL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("DAISYCHAIN_KILL_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	f, pool := startJobFleet(t, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-b", "pg-c"}})
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for run := range 3 {
		step, nth := killSteps[rng.IntN(len(killSteps))], 1+rng.IntN(2)
		t.Run(fmt.Sprintf("run%d-%s-move%d", run, step, nth), func(t *testing.T) {
			drainKilled(t, f, pool, inserter, run, step, nth)
		})
	}
}

func drainKilled(t *testing.T, f *cutovertest.Fleet, pool *pgxpool.Pool, inserter *river.Client[pgx.Tx], run int, step cutover.Step, nth int) {
	ctx := context.Background()
	var tenants []string
	for i := range 4 {
		tn := fmt.Sprintf("k%d_%d", run, i)
		if err := f.AddTenant(ctx, tn, tn, "pg-a", itemsSchema); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tn)
	}
	workloads := map[string]*cutovertest.Workload{}
	for _, tn := range tenants[:2] {
		w := cutovertest.StartWorkload(f.Router, tn, 2)
		t.Cleanup(func() { w.Stop() })
		waitForAcks(t, w, 10)
		workloads[tn] = w
	}
	drainID := fmt.Sprintf("drain-k%d", run)
	res, err := fleetjobs.Insert(ctx, inserter, fleetjobs.DrainArgs{DrainID: drainID, Instance: "pg-a",
		Threshold: drain.Threshold{MaxTenants: 1}, InFlight: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first worker takes the drain and is killed in a move.
	cutovertest.KillChildAt(t, "TestKilledMoverChild", killedMoverEnv,
		killedMover{ControlURL: f.URL, Step: step, AsWorker: true, Nth: nth, Limits: 1})

	// The second takes it up.
	mover, err := f.Mover(&cutover.Config{WindowBudget: time.Minute, LockWait: lockWait, MovesPerSource: 1, MovesPerTarget: 1})
	if err != nil {
		t.Fatal(err)
	}
	planner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover})
	if err != nil {
		t.Fatal(err)
	}
	client, err := startWorker(ctx, pool, &fleetjobs.Config{Mover: mover, Journal: f.Journal, Planner: planner,
		BusySnooze: 200 * time.Millisecond, DrainPoll: time.Second, FanOutTimeout: fanOutTimeout, TakeoverAfter: takeoverAfter},
		&river.Config{JobTimeout: time.Second, RescueStuckJobsAfter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Stop(ctx)
	job := waitFinalized(t, client, res.Job.ID)
	entries, err := f.Journal.Entries(ctx, drainID)
	if err != nil {
		t.Fatal(err)
	}
	var out fleetjobs.FanOutOutput
	if last := entries[len(entries)-1]; !last.Terminal() || json.Unmarshal(last.Detail, &out) != nil {
		t.Fatalf("the drain's journal ends with %+v", last)
	}
	t.Logf("drain job %s; moved %v, failed %v, taken over %v", job.State, out.Moved, out.Failed, out.TakenOver)
	if want := rivertype.JobStateCompleted; len(out.Failed) == 0 && job.State != want {
		t.Errorf("drain job %s with no failed move, want %s: %v", job.State, want, job.Errors)
	}
	if len(out.Moved)+len(out.Failed) != out.Planned || out.Planned == 0 {
		t.Errorf("%d moved and %d failed of %d planned", len(out.Moved), len(out.Failed), out.Planned)
	}
	moved := map[string]bool{}
	for _, tn := range out.Moved {
		moved[tn] = true
	}
	for _, fm := range out.Failed {
		entries, err := f.Journal.Entries(ctx, fm.MoveID)
		if err == nil && entries[len(entries)-1].Step != cutover.StepRolledBack {
			t.Errorf("failed move %s ends with %s, want rolled back", fm.MoveID, entries[len(entries)-1].Step)
		}
	}
	planned := append(slices.Clone(out.Moved), failedTenants(out.Failed)...)
	for _, tn := range tenants {
		if !slices.Contains(planned, tn) {
			assertOn(t, f, tn, "pg-a") // the one the threshold leaves
		}
	}
	for _, tn := range planned {
		moveID := drainID + "/" + tn
		entries, err := f.Journal.Entries(ctx, moveID)
		if err != nil {
			t.Errorf("%s: %v", moveID, err)
			continue
		}
		if n := countStarted(entries, cutover.StepPlan); n != 1 {
			t.Errorf("%s was planned %d times, want once", moveID, n)
		}
		// One mover at a time: each step starts once, but the one the
		// killed worker died in, which its successor starts again.
		if n := restarted(entries); n > 1 {
			t.Errorf("%s: %d steps started more than once, want at most the one a worker died in: %s", moveID, n, stepsOf(entries))
		}
		p, found, err := cutover.PlannedIn(moveID, entries)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			// The worker died between the plan's started entry and its
			// plan: the move changed nothing, and Resume closed it.
			if moved[tn] || entries[len(entries)-1].Step != cutover.StepRolledBack {
				t.Errorf("%s has no plan, yet it ends with %s (moved %v)", moveID, entries[len(entries)-1].Step, moved[tn])
			}
			assertOn(t, f, tn, "pg-a")
			continue
		}
		serving, other := "pg-a", p.Target
		if moved[tn] {
			serving, other = p.Target, "pg-a"
		}
		assertOn(t, f, tn, serving)
		if localpgtest.HasDatabase(t, f.Instances[other], tn) {
			t.Errorf("%s served by %s, but its copy on %s is still there", tn, serving, other)
		}
		if w := workloads[tn]; w != nil {
			assertWrites(t, w, tn, f.Instances[serving].Connect)
		}
	}
	for name, inst := range f.Instances {
		conn, err := inst.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		var slots, subs int
		err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_subscription)`).Scan(&slots, &subs)
		conn.Close(ctx)
		if err != nil || slots != 0 || subs != 0 {
			t.Errorf("%s: %d replication slots and %d subscriptions left (%v)", name, slots, subs, err)
		}
	}
}

// restarted counts the steps started more than once.
func restarted(entries []cutover.Entry) int {
	starts := map[cutover.Step]int{}
	n := 0
	for _, e := range entries {
		if e.Status == cutover.StatusStarted {
			if starts[e.Step]++; starts[e.Step] == 2 {
				n++
			}
		}
	}
	return n
}

func failedTenants(failed []fleetjobs.FailedMove) []string {
	out := make([]string, len(failed))
	for i, fm := range failed {
		out[i] = fm.Tenant
	}
	return out
}

func stepsOf(entries []cutover.Entry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s:%s ", e.Step, e.Status)
	}
	return b.String()
}
