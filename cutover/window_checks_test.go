package cutover_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/replica"
)

// TestPreparedTransactionInTheWindowRollsBack: a transaction prepared on
// the source after preflight, which the stream cannot carry (it is
// decoded only once committed) and which the fence would leave
// uncommittable, rolls the move back with an error naming it; the source
// serves again.
func TestPreparedTransactionInTheWindowRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	src := f.Instances["pg-a"]
	admin, err := src.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Exec(ctx, "ALTER SYSTEM SET max_prepared_transactions = 4")
	admin.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second,
		BeforeStep: func(ctx context.Context, _ string, s cutover.Step) error {
			if s != cutover.StepFence {
				return nil
			}
			conn, err := src.Connect(ctx, "acme")
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			for _, q := range []string{"BEGIN", "INSERT INTO customers (email) VALUES ('prepared@example.com')", "PREPARE TRANSACTION 'in-the-window'"} {
				if _, err := conn.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mover.Move(ctx, cutover.Request{ID: "prepared", Tenant: "acme", Target: "pg-b"})
	if !errors.Is(err, cutover.ErrRolledBack) || !strings.Contains(err.Error(), "'in-the-window' in acme") {
		t.Fatalf("move: %v, want a rollback naming the prepared transaction\n%s", err, rep)
	}
	if !rep.RolledBack || !strings.Contains(rep.RollbackReason, "in-the-window") {
		t.Errorf("report: rolled back %t, reason %q; want the prepared transaction named", rep.RolledBack, rep.RollbackReason)
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
		t.Errorf("route after the rollback: %+v, %v", route, err)
	}
	// The source is open again: the operator can end the transaction.
	conn, err := src.Connect(ctx, "acme")
	if err != nil {
		t.Fatalf("the source refuses connections after the rollback: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ROLLBACK PREPARED 'in-the-window'"); err != nil {
		t.Error(err)
	}
}

// TestResumeAfterTheSwitchReportsTheUnverifiedTarget: a move interrupted
// after its switch is completed by Resume, whose run no longer holds the
// target's snapshot taken in the window: the report says the target was
// not verified and why, and the move completes all the same.
func TestResumeAfterTheSwitchReportsTheUnverifiedTarget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	interrupted := errors.New("interrupted after the switch")
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, Verify: replica.VerifyCounts,
		BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepCatalog {
				return interrupted
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mover.Move(ctx, cutover.Request{ID: "unverified", Tenant: "acme", Target: "pg-b"})
	if !errors.Is(err, interrupted) || errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("move: %v, want it left open after the switch\n%s", err, rep)
	}
	resumer, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, Verify: replica.VerifyCounts})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = resumer.Resume(ctx, "unverified")
	if err != nil || rep.RolledBack {
		t.Fatalf("Resume: %v, want the move completed\n%s", err, rep)
	}
	if rep.VerifyError == "" || rep.Verified != replica.VerifyOff || rep.VerifyMismatch != "" {
		t.Errorf("report: verified %s, error %q, mismatch %q; want it not verified, saying why", rep.Verified, rep.VerifyError, rep.VerifyMismatch)
	}
	if !strings.Contains(rep.String(), "not verified: ") {
		t.Errorf("the report's text does not say the target was not verified:\n%s", rep)
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-b" || route.Paused {
		t.Errorf("route after Resume: %+v, %v", route, err)
	}
}
