package cutover_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// crashChildEnv carries a crashChild to a re-run of this test binary.
const crashChildEnv = "CUTOVER_CRASH_CHILD"

type crashChild struct {
	ControlURL string       `json:"control_url"`
	Move       string       `json:"move"`
	Tenant     string       `json:"tenant"`
	Step       cutover.Step `json:"step"`
	// PgBouncerAdmin, if set, adds a PgBouncerFence on this admin
	// console to the database fence.
	PgBouncerAdmin string `json:"pgbouncer_admin,omitempty"`
	// Revert: revert the done move Move instead, and crash at Step of
	// the revert.
	Revert bool `json:"revert,omitempty"`
	// Rehearse: rehearse the tenant's move under the ID Move instead.
	Rehearse bool `json:"rehearse,omitempty"`
}

// TestCrashChild is the child's side of TestCrashAtEveryStep (and of
// TestRevertCrashAtEveryStep): it moves the tenant (or reverts the move)
// and, once the chosen step is journaled as started, says so and waits to
// be killed.
func TestCrashChild(t *testing.T) {
	var c crashChild
	if !cutovertest.ChildArg(t, crashChildEnv, &c) {
		t.Skip("the child of TestCrashAtEveryStep, TestRevertCrashAtEveryStep and TestResumeReleasesJournaledFences: it runs in the process they start")
	}
	ctx := context.Background()
	control, err := cutovertest.OpenControl(ctx, c.ControlURL)
	if err != nil {
		t.Fatal(err)
	}
	var fences []cutover.Fence
	if c.PgBouncerAdmin != "" {
		fences = []cutover.Fence{cutover.DatabaseFence{}, cutover.PgBouncerFence{Admin: c.PgBouncerAdmin}}
	}
	mover, err := control.Mover(&cutover.Config{
		WindowBudget: time.Minute,
		Fences:       fences,
		BeforeStep: func(_ context.Context, move string, s cutover.Step) error {
			if s == c.Step && (!c.Revert || move != c.Move) { // a revert's steps run under its own ID
				cutovertest.Reached(string(s)) // and wait for SIGKILL
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.Revert:
		_, err = mover.Revert(ctx, c.Move)
	case c.Rehearse:
		_, err = mover.Rehearse(ctx, cutover.RehearseRequest{ID: c.Move, Tenant: c.Tenant, Target: "pg-b"})
	default:
		_, err = mover.Move(ctx, cutover.Request{ID: c.Move, Tenant: c.Tenant, Target: "pg-b"})
	}
	fmt.Printf("RUN ENDED WITHOUT REACHING %s: %v\n", c.Step, err)
	os.Exit(3)
}

// TestCrashAtEveryStep kills a move with SIGKILL in the middle of each
// journaled step in turn, under writes, and resumes it from this process:
// the tenant ends on exactly one instance (route and catalog agree), every
// acknowledged write is there, and no replication slot or subscription is
// left anywhere.
func TestCrashAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process at each of 19 steps")
	}
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	mover, err := f.Mover(&cutover.Config{WindowBudget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	steps := []cutover.Step{cutover.StepPlan, cutover.StepPreflight, cutover.StepStream, cutover.StepCatchUp,
		cutover.StepReversePrepare, cutover.StepPause, cutover.StepQuiesce, cutover.StepFence, cutover.StepBarrier,
		cutover.StepWaitTarget, cutover.StepReverseStart, cutover.StepSyncSequences, cutover.StepSnapshot, cutover.StepSwitch,
		cutover.StepCatalog, cutover.StepVerify, cutover.StepFinishStream, cutover.StepReverse, cutover.StepDone}
	switched := map[cutover.Step]bool{cutover.StepCatalog: true, cutover.StepVerify: true, cutover.StepFinishStream: true,
		cutover.StepReverse: true, cutover.StepDone: true}
	for i, step := range steps {
		tenant := fmt.Sprintf("t%02d_%s", i, step)
		if err := f.AddTenant(ctx, tenant, tenant, "pg-a", shopSchema); err != nil {
			t.Fatal(err)
		}
		w := cutovertest.StartWorkload(f.Router, tenant, 2)
		waitForAcks(t, w, 10)
		move := "crash-" + tenant
		cutovertest.KillChildAt(t, "TestCrashChild", crashChildEnv, crashChild{ControlURL: f.URL, Move: move, Tenant: tenant, Step: step})

		rep, err := mover.Resume(ctx, move)
		if err != nil {
			t.Fatalf("crash at %s: Resume: %v", step, err)
		}
		waitForAcks(t, w, 10) // writes go on where the tenant ended
		stats := w.Stop()

		want := "pg-a"
		if switched[step] {
			want = "pg-b"
		}
		if rep.RolledBack != (want == "pg-a") {
			t.Errorf("crash at %s: report rolled back = %v, want %v", step, rep.RolledBack, want == "pg-a")
		}
		assertResumedOn(t, f, w, stats, tenant, want, fmt.Sprintf("crash at %s", step))
		if switched[step] {
			// A done move's reverse stream runs until Retire.
			assertReverseStreams(t, f, "pg-a", "pg-b", 1)
			if err := mover.Retire(ctx, move); err != nil {
				t.Fatalf("crash at %s: Retire: %v", step, err)
			}
		}
		assertNoReplicationObjects(t, f)
		assertNoPublications(t, f, tenant)
		t.Logf("crash at %-15s -> %s; application: %d writes, %d errors", step, want, stats.Acknowledged, stats.Errors)
		if t.Failed() {
			t.FailNow()
		}
	}
}

// assertResumedOn checks a tenant whose run was resumed: the catalog and
// the route (unpaused) on want, every write the application saw
// acknowledged there, no journal open. what names the case.
func assertResumedOn(t *testing.T, f *cutovertest.Fleet, w *cutovertest.Workload, stats cutovertest.WorkloadStats, tenant, want, what string) {
	t.Helper()
	ctx := context.Background()
	tn, err := f.Catalog.Locate(ctx, tenant)
	if err != nil || tn.Instance != want {
		t.Errorf("%s: catalog has the tenant on %q (%v), want %q", what, tn.Instance, err, want)
	}
	route, err := f.Routes.Resolve(ctx, tenant)
	if err != nil || route.Instance != want || route.Paused {
		t.Errorf("%s: route %v (%v), want %s unpaused", what, route, err, want)
	}
	conn, err := f.Instances[want].Connect(ctx, tenant)
	if err != nil {
		t.Fatalf("%s: the tenant's database on %s: %v", what, want, err)
	}
	missing, err := w.Missing(ctx, conn)
	conn.Close(ctx)
	if err != nil || missing != 0 {
		t.Errorf("%s: %d of %d acknowledged writes missing on %s (%v)", what, missing, stats.Acknowledged, want, err)
	}
	if open, _ := f.Journal.Open(ctx, cutover.KindMove); len(open) != 0 {
		t.Errorf("%s: journals still open after Resume: %v", what, open)
	}
}

// TestResumeReleasesJournaledFences: a move killed with its fences up
// (a PgBouncer PAUSE among them) is resumed by a mover configured with
// other fences: Resume releases the fences the journal says went up, so
// PgBouncer's clients are not held for ever.
func TestResumeReleasesJournaledFences(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process")
	}
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	port := startPgBouncer(t, f.Instances["pg-a"], "acme")
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pgbouncer?sslmode=disable", port)
	cutovertest.KillChildAt(t, "TestCrashChild", crashChildEnv, crashChild{ControlURL: f.URL, Move: "fenced",
		Tenant: "acme", Step: cutover.StepBarrier, PgBouncerAdmin: admin})
	if !pgBouncerPaused(t, admin, "acme") {
		t.Fatal("the killed move left PgBouncer running: the test tests nothing")
	}
	mover, err := f.Mover(nil) // the database fence only
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mover.Resume(ctx, "fenced")
	if err != nil || !rep.RolledBack {
		t.Fatalf("Resume: %v, report %v", err, rep)
	}
	if pgBouncerPaused(t, admin, "acme") {
		t.Error("PgBouncer is still paused after Resume")
	}
	assertServedBySource(t, f, nil)
}

// pgBouncerPaused reads SHOW DATABASES on PgBouncer's admin console.
func pgBouncerPaused(t *testing.T, admin, db string) bool {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(admin)
	must(t, err)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	must(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW DATABASES")
	must(t, err)
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		must(t, err)
		var name, paused string
		for i, fd := range rows.FieldDescriptions() {
			switch fd.Name {
			case "name":
				name = fmt.Sprint(vals[i])
			case "paused":
				paused = fmt.Sprint(vals[i])
			}
		}
		if name == db {
			return paused == "1"
		}
	}
	t.Fatalf("PgBouncer has no database %q", db)
	return false
}
