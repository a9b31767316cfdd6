package cutover_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// revertCrashChildEnv carries a crashChild to a re-run of this test
// binary, for a revert.
const revertCrashChildEnv = "CUTOVER_REVERT_CRASH_CHILD"

// TestRevertCrashChild is the child's side of TestRevertCrashAtEveryStep:
// it reverts the move and, once the chosen step of the revert is
// journaled as started, says so and waits to be killed.
func TestRevertCrashChild(t *testing.T) {
	var c crashChild
	if !cutovertest.ChildArg(t, revertCrashChildEnv, &c) {
		t.Skip("the child of TestRevertCrashAtEveryStep: it runs in the process it starts")
	}
	ctx := context.Background()
	control, err := cutovertest.OpenControl(ctx, c.ControlURL)
	if err != nil {
		t.Fatal(err)
	}
	mover, err := control.Mover(&cutover.Config{
		WindowBudget: time.Minute,
		BeforeStep: func(_ context.Context, move string, s cutover.Step) error {
			if s == c.Step && move != c.Move {
				cutovertest.Reached(string(s)) // and wait for SIGKILL
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = mover.Revert(ctx, c.Move)
	fmt.Printf("REVERT ENDED WITHOUT REACHING %s: %v\n", c.Step, err)
	os.Exit(3)
}

// TestRevertCrashAtEveryStep kills a revert with SIGKILL in the middle of
// each of its journaled steps in turn, under writes, and resumes the move
// from this process: the tenant ends on exactly one instance (the source
// once the revert's switch went through, else the target), every
// acknowledged write is there, and once the move is retired (or
// reverted) no replication slot or subscription is left anywhere.
func TestRevertCrashAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process at each of 12 steps")
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
	// The steps that journal their start (the others, inside the window,
	// journal only a failure: a crash in one is a crash after the last
	// of these).
	steps := []cutover.Step{cutover.StepPlan, cutover.StepPreflight, cutover.StepStream, cutover.StepCatchUp,
		cutover.StepPause, cutover.StepFence, cutover.StepOpenSource, cutover.StepSwitch, cutover.StepCatalog,
		cutover.StepVerify, cutover.StepFinishStream, cutover.StepDone}
	switched := map[cutover.Step]bool{cutover.StepCatalog: true, cutover.StepVerify: true, cutover.StepFinishStream: true,
		cutover.StepDone: true}
	for i, step := range steps {
		tenant := fmt.Sprintf("r%02d_%s", i, step)
		must(t, f.AddTenant(ctx, tenant, tenant, "pg-a", shopSchema))
		w := cutovertest.StartWorkload(f.Router, tenant, 2)
		move := "m-" + tenant
		if rep, err := mover.Move(ctx, cutover.Request{ID: move, Tenant: tenant, Target: "pg-b"}); err != nil || !rep.Reverse {
			t.Fatalf("move %s: %v\n%s", tenant, err, rep)
		}
		waitForAcks(t, w, 10) // on the target
		cutovertest.KillChildAt(t, "TestRevertCrashChild", revertCrashChildEnv, crashChild{ControlURL: f.URL, Move: move, Step: step})

		rep, err := mover.Resume(ctx, move)
		if err != nil {
			t.Fatalf("crash at %s: Resume: %v\n%s", step, err, rep)
		}
		waitForAcks(t, w, 10) // writes go on where the tenant ended
		stats := w.Stop()

		want := "pg-b"
		if switched[step] {
			want = "pg-a"
		}
		tn, err := f.Catalog.Locate(ctx, tenant)
		if err != nil || tn.Instance != want {
			t.Errorf("crash at %s: catalog has the tenant on %q (%v), want %q", step, tn.Instance, err, want)
		}
		route, err := f.Routes.Resolve(ctx, tenant)
		if err != nil || route.Instance != want || route.Paused {
			t.Errorf("crash at %s: route %v (%v), want %s unpaused", step, route, err, want)
		}
		conn, err := f.Instances[want].Connect(ctx, tenant)
		if err != nil {
			t.Fatalf("crash at %s: the tenant's database on %s: %v", step, want, err)
		}
		missing, err := w.Missing(ctx, conn)
		conn.Close(ctx)
		if err != nil || missing != 0 {
			t.Errorf("crash at %s: %d of %d acknowledged writes missing on %s (%v)", step, missing, stats.Acknowledged, want, err)
		}
		if open, _ := f.Journal.Open(ctx, cutover.KindMove); len(open) != 0 {
			t.Errorf("crash at %s: journals still open after Resume: %v", step, open)
		}
		if want == "pg-b" {
			// The revert rolled back: the reverse stream runs on until
			// the move is retired.
			must(t, mover.Retire(ctx, move))
		}
		assertNoReplicationObjects(t, f)
		t.Logf("crash at %-15s -> %s; application: %d writes, %d errors", step, want, stats.Acknowledged, stats.Errors)
		if t.Failed() {
			t.FailNow()
		}
	}
}
