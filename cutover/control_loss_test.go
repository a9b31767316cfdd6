package cutover_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// terminateControlSessions ends sessions of the control database, as a
// failover or an operator would: the lock's session when lock is true,
// every other one otherwise. It returns how many it ended.
func terminateControlSessions(ctx context.Context, f *cutovertest.Fleet, lock bool) (int, error) {
	conn, err := f.ControlInstance.Connect(ctx, "daisychain")
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = 'daisychain' AND pid <> pg_backend_pid() AND backend_type = 'client backend'
		  AND (application_name LIKE 'daisychain%lock%') = $1`, lock).Scan(&n)
	return n, err
}

// TestControlSessionsTerminatedInTheWindow: the control database's
// sessions (journal, catalog, publisher, route listeners) ended inside the
// window: the journal writes and the switch's publish are retried on new
// connections, and the move completes.
func TestControlSessionsTerminatedInTheWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	terminated := 0
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second,
		BeforeStep: func(ctx context.Context, _ string, s cutover.Step) error {
			if s != cutover.StepWaitTarget && s != cutover.StepSwitch {
				return nil
			}
			n, err := terminateControlSessions(ctx, f, false)
			terminated += n
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	rep, err := mover.Move(ctx, cutover.Request{ID: "m", Tenant: "acme", Target: "pg-b"})
	stats := w.Stop()
	if err != nil {
		t.Fatalf("Move with its control sessions terminated in the window: %v\n%s", err, rep)
	}
	if terminated == 0 {
		t.Fatal("no control session was terminated: the test tested nothing")
	}
	t.Logf("%d control sessions terminated; application: %d writes, %d errors (%v)", terminated, stats.Acknowledged, stats.Errors, stats.FirstError)
	if tn, err := f.Catalog.Locate(ctx, "acme"); err != nil || tn.Instance != "pg-b" {
		t.Errorf("catalog: %+v, %v", tn, err)
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-b" || route.Paused {
		t.Errorf("route: %v, %v", route, err)
	}
	conn, err := f.Instances["pg-b"].Connect(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if missing, err := w.Missing(ctx, conn); err != nil || missing != 0 {
		t.Errorf("%d acknowledged writes missing on the target (%v)", missing, err)
	}
	assertReverseStreams(t, f, "pg-a", "pg-b", 1) // until Retire
}

// TestLockLostBeforeTheWindow: the session holding the tenant's lock ends
// during the copy (another mover may take the tenant now): the move stops
// before its window, says so, and rolls back.
func TestLockLostBeforeTheWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second,
		BeforeStep: func(ctx context.Context, _ string, s cutover.Step) error {
			if s != cutover.StepCatchUp {
				return nil
			}
			n, err := terminateControlSessions(ctx, f, true)
			if err == nil && n != 1 {
				err = errors.New("found no lock session to terminate")
			}
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	rep, err := mover.Move(ctx, cutover.Request{ID: "m", Tenant: "acme", Target: "pg-b"})
	stats := w.Stop()
	if !errors.Is(err, cutover.ErrLockLost) {
		t.Fatalf("Move that lost its lock: %v, want ErrLockLost\n%s", err, rep)
	}
	if !errors.Is(err, cutover.ErrRolledBack) {
		t.Errorf("Move that lost its lock: %v, want it rolled back", err)
	}
	for _, s := range rep.Steps {
		if s.Step == cutover.StepPause || s.Step == cutover.StepFence {
			t.Errorf("the window opened (%s ran) after the lock was lost", s.Step)
		}
	}
	if stats.Errors != 0 {
		t.Errorf("application errors: %d (%v)", stats.Errors, stats.FirstError)
	}
	assertServedBySource(t, f, w)
}
