package cutover_test

import (
	"context"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// TestRetireForgetsTheRoute: once a move is retired, its route says what
// the catalog says, so Retire deletes it from the route table (which then
// holds overrides, not history); every reader falls back to the catalog
// and finds the target, and a later move of the tenant is followed by the
// application as before.
func TestRetireForgetsTheRoute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	defer w.Stop()
	for i, target := range []string{"pg-b", "pg-a"} {
		id := "retire-route-" + target
		if _, err := mover.Move(ctx, cutover.Request{ID: id, Tenant: "acme", Target: target}); err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
		if err := mover.Retire(ctx, id); err != nil {
			t.Fatalf("retire %d: %v", i, err)
		}
		if route, found, err := f.Publisher.Published(ctx, "acme"); err != nil || found {
			t.Errorf("after retiring %s the route table still has %v (%v)", id, route, err)
		}
		if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != target || route.Paused {
			t.Errorf("after retiring %s: resolved %v, %v; want the catalog's %s", id, route, err, target)
		}
		waitForAcks(t, w, 10)
		if route, err := f.Router.Route(ctx, "acme"); err != nil || route.Instance != target {
			t.Errorf("after retiring %s the application's Router has %v, %v; want %s", id, route, err, target)
		}
	}
	if stats := w.Stop(); stats.Errors != 0 {
		t.Errorf("%d application errors (%v)", stats.Errors, stats.FirstError)
	}
}
