package cutover_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/replica"
)

// TestVerifyAfterTheSwitch: the target is verified at full checksums
// after the switch, against its snapshot taken in the window, while the
// application writes to it again; a target that differs from the source
// (a row written to it directly in the window) is reported, in the report
// and as an event, and the move, whose switch is done, completes.
func TestVerifyAfterTheSwitch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, Verify: replica.VerifyChecksums})
	if err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	waitForAcks(t, w, 10)
	rep, err := mover.Move(ctx, cutover.Request{ID: "checked", Tenant: "acme", Target: "pg-b"})
	if err != nil || rep.Verified != replica.VerifyChecksums || rep.VerifyMismatch != "" || rep.VerifyError != "" {
		t.Fatalf("Move: %v\n%s", err, rep)
	}
	waitForAcks(t, w, 10)
	if stats := w.Stop(); stats.Errors != 0 {
		t.Errorf("%d application errors (%v)", stats.Errors, stats.FirstError)
	}
	if err := mover.Retire(ctx, "checked"); err != nil {
		t.Fatal(err)
	}

	intruder, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, Verify: replica.VerifyChecksums,
		BeforeStep: func(ctx context.Context, _ string, s cutover.Step) error {
			if s != cutover.StepSnapshot {
				return nil
			}
			conn, err := f.Instances["pg-a"].Connect(ctx, "acme") // the target of the move back
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, "INSERT INTO customers (email) VALUES ('intruder@example.com')")
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	mismatches, unsubscribe := intruder.Subscribe(cutover.EventVerifyMismatch)
	rep, err = intruder.Move(ctx, cutover.Request{ID: "differs", Tenant: "acme", Target: "pg-a"})
	unsubscribe()
	if err != nil || rep.RolledBack {
		t.Fatalf("Move whose target differs: %v, want it completed\n%s", err, rep)
	}
	t.Logf("%s", rep)
	if !strings.Contains(rep.VerifyMismatch, "customers") || rep.Verified != replica.VerifyOff {
		t.Errorf("report: verified %s, mismatch %q; want the customers table named", rep.Verified, rep.VerifyMismatch)
	}
	events := 0
	for e := range mismatches {
		if e.Move == "differs" && e.Err != nil {
			events++
		}
	}
	if events != 1 {
		t.Errorf("%d verify_mismatch events, want 1", events)
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
		t.Errorf("route: %v, %v", route, err)
	}
}
