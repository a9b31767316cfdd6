package fleetjobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// TestMoveJobWaitsForBusyTenant: while another mover holds the tenant's
// lock, a move job snoozes (no error recorded, nothing journaled) instead
// of failing; once the lock is free, it moves the tenant.
func TestMoveJobWaitsForBusyTenant(t *testing.T) {
	t.Parallel()
	s := fleetFor(t)
	ctx := context.Background()
	tenant, _ := s.addTenant(t, "busy")
	moveID := "move-" + tenant
	held, err := s.Journal.TryLock(ctx, "another mover", cutover.Lock{Key: "daisychain.tenant:" + tenant})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()

	res, err := fleetjobs.Insert(ctx, s.client, fleetjobs.MoveArgs{MoveID: moveID, Tenant: tenant, Target: "pg-b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	job := s.waitSnoozed(t, res.Job.ID)
	if len(job.Errors) != 0 || job.Attempt != 0 {
		t.Errorf("job %d used up %d attempts, with errors %v, while the tenant was busy: want a snooze", job.ID, job.Attempt, job.Errors)
	}
	if _, err := s.Journal.Entries(ctx, moveID); !errors.Is(err, cutover.ErrMoveNotFound) {
		t.Errorf("the journal of %s while the tenant was busy: %v, want nothing journaled", moveID, err)
	}

	held.Release()
	assertOutput(t, s.waitJob(t, res.Job.ID), fleetjobs.DecisionMoved)
	assertOn(t, s.Fleet, tenant, "pg-b")
}

// waitSnoozed waits until the job has run once and been snoozed.
func (s *sharedFleet) waitSnoozed(t *testing.T, id int64) *rivertype.JobRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		job, err := s.client.JobGet(ctx, id)
		if err != nil {
			t.Fatalf("job %d: %v", id, err)
		}
		// Snoozed: tried, and due again (River makes a short snooze
		// available at once, scheduled for later).
		if job.AttemptedAt != nil && (job.State == rivertype.JobStateAvailable || job.State == rivertype.JobStateScheduled) {
			return job
		}
		if job.FinalizedAt != nil {
			t.Fatalf("job %d is %s, want it snoozed while the tenant is busy: %v", id, job.State, job.Errors)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %d still %s, want it snoozed", id, job.State)
		case <-tick.C:
		}
	}
}
