package cutover_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
)

// TestRouteChangedUnderTheMove: someone else publishes the tenant's route
// while the move runs; the move's publish is refused with
// ErrRouteConflict and the move rolls back, leaving the other's route.
func TestRouteChangedUnderTheMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	src, err := f.Catalog.Instance(ctx, "pg-a")
	if err != nil {
		t.Fatal(err)
	}
	foreign := flags.RouteTo(src, "acme", 1000)
	foreign.Move = "someone-else"
	mover, err := f.Mover(&cutover.Config{
		WindowBudget: 30 * time.Second,
		BeforeStep: func(ctx context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepPause {
				return f.Publisher.Publish(ctx, "acme", foreign)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mover.Move(ctx, cutover.Request{ID: "conflicted", Tenant: "acme", Target: "pg-b"})
	if !errors.Is(err, cutover.ErrRouteConflict) || !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("Move: %v, want ErrRouteConflict and ErrRolledBack\n%s", err, rep)
	}
	if tn, err := f.Catalog.Locate(ctx, "acme"); err != nil || tn.Instance != "pg-a" {
		t.Errorf("catalog after the conflict: %+v, %v; want the tenant on pg-a", tn, err)
	}
	if route, found, err := f.Publisher.Published(ctx, "acme"); err != nil || !found || route.Move != "someone-else" || route.Epoch != 1000 {
		t.Errorf("route after the conflict: %v, %v, %v; want the other publisher's", route, found, err)
	}
	assertNoReplicationObjects(t, f)
}
