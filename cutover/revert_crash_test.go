package cutover_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

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
		cutovertest.KillChildAt(t, "TestCrashChild", crashChildEnv, crashChild{ControlURL: f.URL, Move: move, Step: step, Revert: true})

		rep, err := mover.Resume(ctx, move)
		if err == nil && rep.RolledBack != !switched[step] {
			t.Errorf("crash at %s: report rolled back = %v, want %v", step, rep.RolledBack, !switched[step])
		}
		if err != nil {
			t.Fatalf("crash at %s: Resume: %v\n%s", step, err, rep)
		}
		waitForAcks(t, w, 10) // writes go on where the tenant ended
		stats := w.Stop()

		want := "pg-b"
		if switched[step] {
			want = "pg-a"
		}
		assertResumedOn(t, f, w, stats, tenant, want, fmt.Sprintf("crash at %s", step))
		if want == "pg-b" {
			// The revert rolled back: the reverse stream runs on until
			// the move is retired.
			must(t, mover.Retire(ctx, move))
		}
		assertNoReplicationObjects(t, f)
		assertNoPublications(t, f, tenant)
		t.Logf("crash at %-15s -> %s; application: %d writes, %d errors", step, want, stats.Acknowledged, stats.Errors)
		if t.Failed() {
			t.FailNow()
		}
	}
}
