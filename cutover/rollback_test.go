package cutover_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/replica"
)

// assertServedBySource checks what a user checks after a rollback: the
// route and the catalog on the source, the source open and holding every
// acknowledged write, no target database, no replication objects.
func assertServedBySource(t *testing.T, f *cutovertest.Fleet, w *cutovertest.Workload) {
	t.Helper()
	ctx := context.Background()
	route, err := f.Routes.Resolve(ctx, "acme")
	if err != nil || route.Instance != "pg-a" || route.Paused {
		t.Errorf("route after rollback: %v, %v; want pg-a unpaused", route, err)
	}
	if tn, err := f.Catalog.Locate(ctx, "acme"); err != nil || tn.Instance != "pg-a" {
		t.Errorf("catalog after rollback: %+v, %v", tn, err)
	}
	src, err := f.Instances["pg-a"].Connect(ctx, "acme")
	if err != nil {
		t.Fatalf("the source refuses connections after rollback: %v", err)
	}
	defer src.Close(ctx)
	if w != nil {
		if missing, err := w.Missing(ctx, src); err != nil || missing != 0 {
			t.Errorf("%d acknowledged writes missing on the source (%v)", missing, err)
		}
	}
	tgt, err := f.Instances["pg-b"].Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close(ctx)
	var exists bool
	if err := tgt.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'acme')").Scan(&exists); err != nil || exists {
		t.Errorf("target database after rollback: exists=%v (%v)", exists, err)
	}
	assertNoReplicationObjects(t, f)
}

// TestFailureInEachStepRollsBack forces a failure in every step before the
// switch, one move after the other on the same tenant, under writes: each
// rolls back with the source serving, and the next move starts cleanly.
func TestFailureInEachStepRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	steps := []cutover.Step{cutover.StepPlan, cutover.StepPreflight, cutover.StepStream, cutover.StepCatchUp,
		cutover.StepPause, cutover.StepQuiesce, cutover.StepFence, cutover.StepBarrier, cutover.StepWaitTarget,
		cutover.StepSyncSequences, cutover.StepSnapshot, cutover.StepSwitch}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	defer w.Stop()
	for _, failAt := range steps {
		injected := fmt.Errorf("injected failure at %s", failAt)
		mover, err := f.Mover(&cutover.Config{
			WindowBudget: 30 * time.Second,
			BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
				if s == failAt {
					return injected
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := mover.Move(ctx, cutover.Request{ID: "fail-at-" + string(failAt), Tenant: "acme", Target: "pg-b"})
		if !errors.Is(err, cutover.ErrRolledBack) || !errors.Is(err, injected) {
			t.Fatalf("fail at %s: Move error %v, want ErrRolledBack wrapping the injected failure", failAt, err)
		}
		if rep == nil || !rep.RolledBack || !strings.Contains(rep.RollbackReason, string(failAt)) {
			t.Fatalf("fail at %s: report %v", failAt, rep)
		}
		assertServedBySource(t, f, w)
		if t.Failed() {
			t.Fatalf("after the failure at %s", failAt)
		}
	}
	if stats := w.Stop(); stats.Errors != 0 {
		t.Errorf("the application saw %d errors over %d rollbacks; first: %v", stats.Errors, len(steps), stats.FirstError)
	}
	if open, err := f.Journal.Open(ctx, cutover.KindMove); err != nil || len(open) != 0 {
		t.Errorf("open moves after rollbacks: %v, %v", open, err)
	}
}

// TestBudgetExceededRollsBack: a window slower than its budget rolls back,
// and the application, held meanwhile, goes on with the source.
func TestBudgetExceededRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(&cutover.Config{
		WindowBudget: 500 * time.Millisecond,
		BeforeStep: func(ctx context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepSnapshot { // a snapshot that takes too long
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Second):
				}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	rep, err := mover.Move(ctx, cutover.Request{Tenant: "acme", Target: "pg-b"})
	waitForAcks(t, w, 20) // writes go on, on the source
	stats := w.Stop()
	if !errors.Is(err, cutover.ErrBudgetExceeded) || !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("Move: %v, want ErrBudgetExceeded and ErrRolledBack", err)
	}
	if !rep.RolledBack || !strings.Contains(rep.RollbackReason, "budget") {
		t.Errorf("report: rolled back %v, reason %q", rep.RolledBack, rep.RollbackReason)
	}
	if stats.Errors != 0 {
		t.Errorf("application errors: %d; first: %v", stats.Errors, stats.FirstError)
	}
	assertServedBySource(t, f, w)
}

// TestBadRequestsChangeNothing: requests naming what does not exist, or
// moving a tenant where it is, are refused before anything is journaled.
func TestBadRequestsChangeNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []cutover.Request{
		{Tenant: "nobody", Target: "pg-b"},
		{Tenant: "acme", Target: "pg-nowhere"},
		{Tenant: "acme", Target: "pg-a"},
		{Tenant: "acme"},
	} {
		if _, err := mover.Move(ctx, req); !errors.Is(err, cutover.ErrPreflight) || !errors.Is(err, replica.ErrPreflight) {
			t.Errorf("Move(%+v): %v, want ErrPreflight, which is also replica.ErrPreflight", req, err)
		}
	}
	if _, err := cutover.New(&cutover.Config{}); err == nil || !strings.Contains(err.Error(), "Catalog is nil") {
		t.Errorf("New with an empty config: %v", err)
	}
	if open, _ := f.Journal.Open(ctx, cutover.KindMove); len(open) != 0 {
		t.Errorf("refused requests were journaled: %v", open)
	}
	assertServedBySource(t, f, nil)
}

// TestDryRunChangesNothing: the plan with its estimates, and the same
// preflight problems a move would be refused for, with nothing changed.
func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := mover.DryRun(ctx, cutover.Request{Tenant: "acme", Target: "pg-b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", plan)
	if len(plan.Problems) != 0 || plan.Bytes == 0 || plan.CopyEstimate <= 0 || plan.WindowEstimate <= 0 {
		t.Errorf("plan: %+v", plan)
	}
	// A table without a replica identity is a problem the plan names.
	src, err := f.Instances["pg-a"].Connect(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	if _, err := src.Exec(ctx, "CREATE TABLE no_key (v int)"); err != nil {
		t.Fatal(err)
	}
	plan, err = mover.DryRun(ctx, cutover.Request{Tenant: "acme", Target: "pg-b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Problems) == 0 || !strings.Contains(strings.Join(plan.Problems, "\n"), "no_key") {
		t.Errorf("plan problems %q do not name table no_key", plan.Problems)
	}
	if open, _ := f.Journal.Open(ctx, cutover.KindMove); len(open) != 0 {
		t.Errorf("a dry run was journaled: %v", open)
	}
	assertServedBySource(t, f, nil)
}

// lostAckPublisher commits the switch's route but reports an error, as a
// connection lost after COMMIT would.
type lostAckPublisher struct {
	*flags.PostgresProvider
}

func (p lostAckPublisher) Publish(ctx context.Context, tenant string, r flags.Route) error {
	err := p.PostgresProvider.Publish(ctx, tenant, r)
	if err == nil && !r.Paused && r.Instance == "pg-b" {
		return errors.New("connection reset after COMMIT")
	}
	return err
}

// TestSwitchWithLostAcknowledgementGoesForward: a switch whose publish
// committed but reported an error is not rolled back (the target already
// serves): the move completes.
func TestSwitchWithLostAcknowledgementGoesForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	// Not f.Mover (its Publisher is this test's), so the race detector's
	// quiet spell is set here.
	mover, err := cutover.New(&cutover.Config{Catalog: f.Catalog, Publisher: lostAckPublisher{f.Publisher},
		Routes: f.Routes, Journal: f.Journal, WindowBudget: 30 * time.Second, QuietSpell: cutovertest.QuietSpell()})
	if err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	rep, err := mover.Move(ctx, cutover.Request{Tenant: "acme", Target: "pg-b"})
	stats := w.Stop()
	if err != nil || rep.RolledBack {
		t.Fatalf("Move: %v, rolled back %v", err, rep.RolledBack)
	}
	if tn, err := f.Catalog.Locate(ctx, "acme"); err != nil || tn.Instance != "pg-b" {
		t.Errorf("catalog: %+v, %v", tn, err)
	}
	conn, err := f.Instances["pg-b"].Connect(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if missing, err := w.Missing(ctx, conn); err != nil || missing != 0 || stats.Errors != 0 {
		t.Errorf("%d missing (%v), %d application errors", missing, err, stats.Errors)
	}
	assertReverseStreams(t, f, "pg-a", "pg-b", 1) // until Retire
}
