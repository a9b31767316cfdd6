package fleetjobs_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

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
			tenant, w := s.addTenant(t, "killed_at_"+string(tc.step))
			moveID := "move-" + tenant
			cutovertest.KillChildAt(t, "TestKilledMoverChild", killedMoverEnv,
				killedMover{ControlURL: s.URL, Move: moveID, Tenant: tenant, Step: tc.step})
			if open, err := s.Journal.Open(ctx, cutover.KindMove); err != nil || !slices.Contains(open, moveID) {
				t.Fatalf("after the kill, open moves are %v (%v), want %s among them", open, err, moveID)
			}

			res, err := fleetjobs.Insert(ctx, s.client, fleetjobs.MoveArgs{MoveID: moveID, Tenant: tenant, Target: "pg-b"}, nil)
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
			assertSettled(t, s.Fleet, w, moveID, tenant, tc.wantOn)
		})
	}
}
