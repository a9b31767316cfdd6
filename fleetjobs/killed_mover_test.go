package fleetjobs_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleetjobs"
	"github.com/daisychain-db/daisychain/replica"
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
	// Nth: the child is killed when the Nth move it runs reaches Step
	// (0 means the first).
	Nth int `json:"nth,omitempty"`
	// Limits are the child's Movers' MovesPerSource and MovesPerTarget.
	Limits int `json:"limits,omitempty"`
	// Only: the child is killed in a move whose ID has this suffix
	// (empty: any). Converts: its Mover can convert; the replica it
	// builds is its child and dies with it.
	Only     string `json:"only,omitempty"`
	Converts bool   `json:"converts,omitempty"`
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
	var reached atomic.Int64
	var converter replica.Converter
	if c.Converts {
		converter = cutovertest.LocalConverter()
	}
	mover, err := control.Mover(&cutover.Config{
		WindowBudget: time.Minute, LockWait: lockWait, MovesPerSource: c.Limits, MovesPerTarget: c.Limits, Converter: converter,
		BeforeStep: func(_ context.Context, moveID string, s cutover.Step) error {
			if s == c.Step && strings.HasSuffix(moveID, c.Only) && reached.Add(1) >= int64(max(c.Nth, 1)) {
				cutovertest.Reached(fmt.Sprintf("%s of %s", s, moveID)) // and wait for SIGKILL
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
	planner, err := drain.New(&drain.Config{Catalog: control.Catalog, Mover: mover})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startWorker(ctx, pool, &fleetjobs.Config{Mover: mover, Journal: control.Journal, Planner: planner,
		BusySnooze: 200 * time.Millisecond, DrainPoll: time.Second, FanOutTimeout: fanOutTimeout, TakeoverAfter: takeoverAfter}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Minute) // KillChildAt gives up long before
	fmt.Printf("WORKER NEVER REACHED %s\n", c.Step)
	os.Exit(3)
}
