package fleetjobs_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// killedMoverEnv carries a killedMover to a re-run of this test binary.
const killedMoverEnv = "FLEETJOBS_KILLED_MOVER"

type killedMover struct {
	ControlURL string       `json:"control_url"`
	Step       cutover.Step `json:"step"`
	// AsWorker: the child is a River worker, which takes the move from
	// its job; otherwise it moves Tenant with ID Move itself.
	AsWorker bool   `json:"as_worker,omitempty"`
	Move     string `json:"move,omitempty"`
	Tenant   string `json:"tenant,omitempty"`
}

// TestKilledMoverChild is the child of TestMoveJobResumesKilledMove and
// TestRescuedJobResumesOnAnotherWorker: a process that moves a tenant and
// is killed with SIGKILL once the chosen step is journaled as started.
func TestKilledMoverChild(t *testing.T) {
	var c killedMover
	if !cutovertest.ChildArg(t, killedMoverEnv, &c) {
		t.Skip("the child of the tests that kill a mover: it runs in the process they start")
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
	if !c.AsWorker {
		_, err = mover.Move(ctx, cutover.Request{ID: c.Move, Tenant: c.Tenant, Target: "pg-b"})
		fmt.Printf("MOVE ENDED WITHOUT REACHING %s: %v\n", c.Step, err)
		os.Exit(3)
	}
	pool, err := pgxpool.New(ctx, c.ControlURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startWorker(ctx, pool, &fleetjobs.Config{Mover: mover, Journal: control.Journal}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Minute) // KillChildAt gives up long before
	fmt.Printf("WORKER NEVER REACHED %s\n", c.Step)
	os.Exit(3)
}
