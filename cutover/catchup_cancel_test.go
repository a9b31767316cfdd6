package cutover_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
)

// TestCatchUpCancelledIsCancellation: a caller that cancels its context
// during the catch-up gets its cancellation back, not ErrCatchUpTimeout,
// and the move is rolled back (the tenant stays on its source).
func TestCatchUpCancelledIsCancellation(t *testing.T) {
	t.Parallel()
	f := startFleet(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second,
		BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepCatchUp {
				cancel()
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mover.Move(ctx, cutover.Request{ID: "cancelled", Tenant: "acme", Target: "pg-b"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, cutover.ErrCatchUpTimeout) {
		t.Fatalf("Move cancelled in the catch-up: %v, want context.Canceled and not ErrCatchUpTimeout\n%s", err, rep)
	}
	if tn, err := f.Catalog.Locate(context.Background(), "acme"); err != nil || tn.Instance != "pg-a" {
		t.Errorf("catalog: %+v, %v; want the tenant on pg-a", tn, err)
	}
}
