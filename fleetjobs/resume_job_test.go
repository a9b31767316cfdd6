package fleetjobs_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// killedMoveEnv carries a killedMove to a re-run of this test binary.
const killedMoveEnv = "FLEETJOBS_KILLED_MOVE"

type killedMove struct {
	ControlURL string       `json:"control_url"`
	Move       string       `json:"move"`
	Tenant     string       `json:"tenant"`
	Step       cutover.Step `json:"step"`
}

// TestKilledMoveChild is the child of TestMoveJobResumesKilledMove: a
// process that moves the tenant and is killed once the chosen step is
// journaled as started.
func TestKilledMoveChild(t *testing.T) {
	var c killedMove
	if !cutovertest.ChildArg(t, killedMoveEnv, &c) {
		t.Skip("the child of TestMoveJobResumesKilledMove: it runs in the process that test starts")
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
	_, err = mover.Move(ctx, cutover.Request{ID: c.Move, Tenant: c.Tenant, Target: "pg-b"})
	fmt.Printf("MOVE ENDED WITHOUT REACHING %s: %v\n", c.Step, err)
	os.Exit(3)
}

// TestMoveJobResumesKilledMove: a process moving a tenant is killed with
// SIGKILL; a move job of the same ID, run by another process's worker,
// finds the move open in the journal and resumes it: a move killed after
// its switch completes (job completed, tenant on the target), one killed
// before is rolled back (job cancelled, not retried, tenant on the
// source). Either way no acknowledged write is missing and no move is
// left open.
func TestMoveJobResumesKilledMove(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process")
	}
	t.Parallel()
	s := fleetFor(t)
	for _, tc := range []struct {
		step      cutover.Step
		wantOn    string
		wantState rivertype.JobState
	}{
		{cutover.StepVerify, "pg-b", rivertype.JobStateCompleted},
		{cutover.StepCatchUp, "pg-a", rivertype.JobStateCancelled},
	} {
		t.Run(string(tc.step), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tenant := "killed_at_" + string(tc.step)
			moveID := "move-" + tenant
			w := s.addTenant(t, tenant)
			cutovertest.KillChildAt(t, "TestKilledMoveChild", killedMoveEnv,
				killedMove{ControlURL: s.URL, Move: moveID, Tenant: tenant, Step: tc.step})
			if open, err := s.Journal.Open(ctx, cutover.KindMove); err != nil || !contains(open, moveID) {
				t.Fatalf("after the kill, open moves are %v (%v), want %s among them", open, err, moveID)
			}

			res, err := fleetjobs.InsertMove(ctx, s.client, fleetjobs.MoveArgs{MoveID: moveID, Tenant: tenant, Target: "pg-b"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			job := s.waitJob(t, res.Job.ID)
			if job.State != tc.wantState {
				t.Fatalf("job %d is %s after %d attempts, want %s: %v", job.ID, job.State, job.Attempt, tc.wantState, job.Errors)
			}
			if tc.wantState == rivertype.JobStateCompleted {
				assertOutput(t, job, fleetjobs.DecisionResumed)
			} else if last := job.Errors[len(job.Errors)-1].Error; !strings.Contains(last, "rolled back") {
				t.Errorf("cancelled job %d says %q, want why: rolled back", job.ID, last)
			}
			waitForAcks(t, w, 10)
			stats := w.Stop()
			assertOn(t, s, tenant, tc.wantOn)
			conn, err := s.Instances[tc.wantOn].Connect(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			missing, err := w.Missing(ctx, conn)
			conn.Close(ctx)
			if err != nil || missing != 0 {
				t.Errorf("%d of %d acknowledged writes missing on %s (%v)", missing, stats.Acknowledged, tc.wantOn, err)
			}
			if open, err := s.Journal.Open(ctx, cutover.KindMove); err != nil || contains(open, moveID) {
				t.Errorf("after the job, open moves are %v (%v), want %s closed", open, err, moveID)
			}
		})
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
