package fleetjobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleetjobs"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestMoveJob: a move enqueued as a job, twice, runs once and completes
// under writes (no application error, no acknowledged write missing, route
// and catalog on the target); the same ID with another target is refused;
// a job of a move that is done already changes nothing, and so does one
// whose ID the journal has for another move; a retire job drops the source
// copy.
func TestMoveJob(t *testing.T) {
	t.Parallel()
	s := fleetFor(t)
	ctx := context.Background()
	tenant, w := s.addTenant(t, "acme")
	moveID := "move-" + tenant

	args := fleetjobs.MoveArgs{MoveID: moveID, Tenant: tenant, Target: "pg-b"}
	first, err := fleetjobs.Insert(ctx, s.client, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := fleetjobs.Insert(ctx, s.client, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !second.UniqueSkippedAsDuplicate || second.Job.ID != first.Job.ID {
		t.Errorf("second insert of %s: job %d (skipped as duplicate: %v), want job %d again",
			moveID, second.Job.ID, second.UniqueSkippedAsDuplicate, first.Job.ID)
	}
	if _, err := fleetjobs.Insert(ctx, s.client, fleetjobs.MoveArgs{MoveID: moveID, Tenant: tenant, Target: "pg-a"}, nil); !errors.Is(err, fleetjobs.ErrMoveIDConflict) {
		t.Errorf("insert of %s to another target: %v, want ErrMoveIDConflict", moveID, err)
	}

	job := s.waitJob(t, first.Job.ID)
	assertOutput(t, job, fleetjobs.DecisionMoved)
	if stats := assertSettled(t, s.Fleet, w, moveID, tenant, "pg-b"); stats.Errors != 0 {
		t.Errorf("the application saw %d errors, first: %v", stats.Errors, stats.FirstError)
	}
	entries, err := s.Journal.Entries(ctx, moveID)
	if err != nil {
		t.Fatal(err)
	}
	if n := countStarted(entries, cutover.StepPlan); n != 1 {
		t.Errorf("the journal of %s has %d plans, want 1: the move ran %d times", moveID, n, n)
	}

	// The completed job is kept, so a third insert is skipped too; once it
	// is gone (River's cleaner deletes it after a day), a new job of the
	// move finds it done and does nothing.
	if _, err := s.client.JobDelete(ctx, first.Job.ID); err != nil {
		t.Fatal(err)
	}
	again, err := fleetjobs.Insert(ctx, s.client, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.UniqueSkippedAsDuplicate {
		t.Fatalf("insert after the job was deleted: skipped as a duplicate of job %d", again.Job.ID)
	}
	assertOutput(t, s.waitJob(t, again.Job.ID), fleetjobs.DecisionAlreadyDone)
	after, err := s.Journal.Entries(ctx, moveID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(entries) {
		t.Errorf("a job of a done move journaled %d entries, want none", len(after)-len(entries))
	}
	assertOn(t, s.Fleet, tenant, "pg-b")

	// The ID reused for another move is not taken for that move done.
	if _, err := s.client.JobDelete(ctx, again.Job.ID); err != nil {
		t.Fatal(err)
	}
	reused, err := fleetjobs.Insert(ctx, s.client, fleetjobs.MoveArgs{MoveID: moveID, Tenant: tenant, Target: "pg-a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if job := s.waitJob(t, reused.Job.ID); job.State != rivertype.JobStateCancelled || !strings.Contains(fmt.Sprint(job.Errors), "the journal's") {
		t.Errorf("job %d of %s to pg-a, a move journaled to pg-b: %s, errors %v; want cancelled, naming the journaled move", job.ID, moveID, job.State, job.Errors)
	}
	if again, err := s.Journal.Entries(ctx, moveID); err != nil || len(again) != len(entries) {
		t.Errorf("the job of a reused ID journaled %d entries (%v), want none", len(again)-len(entries), err)
	}
	assertOn(t, s.Fleet, tenant, "pg-b")

	retire, err := fleetjobs.Insert(ctx, s.client, fleetjobs.RetireArgs{MoveID: moveID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertOutput(t, s.waitJob(t, retire.Job.ID), fleetjobs.DecisionRetired)
	if databaseExists(t, s, "pg-a", tenant) {
		t.Errorf("the retired move's source copy %s is still on pg-a", tenant)
	}
}

// assertOutput checks that the job completed with the decision.
func assertOutput(t *testing.T, job *rivertype.JobRow, want fleetjobs.Decision) {
	t.Helper()
	if job.State != rivertype.JobStateCompleted {
		t.Fatalf("job %d (%s) is %s after %d attempts, want completed: %v", job.ID, job.Kind, job.State, job.Attempt, job.Errors)
	}
	var out fleetjobs.Output
	if err := json.Unmarshal(job.Output(), &out); err != nil {
		t.Fatalf("job %d's output %s: %v", job.ID, job.Output(), err)
	}
	if out.Decision != want {
		t.Errorf("job %d decided %q, want %q", job.ID, out.Decision, want)
	}
}

// assertOn checks that the catalog and the route have the tenant on
// instance, unpaused.
func assertOn(t *testing.T, f *cutovertest.Fleet, tenant, instance string) {
	t.Helper()
	ctx := context.Background()
	tn, err := f.Catalog.Locate(ctx, tenant)
	if err != nil || tn.Instance != instance {
		t.Errorf("catalog has %s on %q (%v), want %s", tenant, tn.Instance, err, instance)
	}
	route, err := f.Routes.Resolve(ctx, tenant)
	if err != nil || route.Instance != instance || route.Paused {
		t.Errorf("route of %s: %+v (%v), want %s unpaused", tenant, route, err, instance)
	}
}

// assertSettled checks what a user checks once a move job is over: the
// application writes on, the tenant is on instance (catalog and route),
// every acknowledged write is there, and the move is not open. It stops
// the application and returns what it saw.
func assertSettled(t *testing.T, f *cutovertest.Fleet, w *cutovertest.Workload, moveID, tenant, instance string) cutovertest.WorkloadStats {
	t.Helper()
	ctx := context.Background()
	waitForAcks(t, w, 10)
	stats := w.Stop()
	assertOn(t, f, tenant, instance)
	conn, err := f.Instances[instance].Connect(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := w.Missing(ctx, conn)
	conn.Close(ctx)
	if err != nil || missing != 0 {
		t.Errorf("%d of %d acknowledged writes missing on %s (%v)", missing, stats.Acknowledged, instance, err)
	}
	if open, err := f.Journal.Open(ctx, cutover.KindMove); err != nil || slices.Contains(open, moveID) {
		t.Errorf("open moves %v (%v), want %s over", open, err, moveID)
	}
	return stats
}

func countStarted(entries []cutover.Entry, step cutover.Step) int {
	n := 0
	for _, e := range entries {
		if e.Step == step && e.Status == cutover.StatusStarted {
			n++
		}
	}
	return n
}

func databaseExists(t *testing.T, s *sharedFleet, instance, db string) bool {
	t.Helper()
	return localpgtest.HasDatabase(t, s.Instances[instance], db)
}
