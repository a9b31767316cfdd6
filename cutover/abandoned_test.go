package cutover_test

import (
	"context"
	"testing"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// TestAbandoned: a move whose mover runs is not abandoned; once its lock
// session is gone (as when its host dies) it is, and Resume rolls it back;
// an unknown ID and a move that is over are not.
func TestAbandoned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-b"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.AddTenant(ctx, "acme", "acme", "pg-a", ""); err != nil {
		t.Fatal(err)
	}
	mover, release, done := heldMove(t, f, cutover.Config{}, cutover.Request{ID: "move-acme", Tenant: "acme", Target: "pg-b"},
		cutover.StepCatchUp, nil)
	if ab, err := mover.Abandoned(ctx, "move-acme"); err != nil || ab {
		t.Fatalf("Abandoned of a running move = %v, %v; want false", ab, err)
	}
	if ab, err := mover.Abandoned(ctx, "no-such-move"); err != nil || ab {
		t.Fatalf("Abandoned of an unknown ID = %v, %v; want false", ab, err)
	}
	// The mover's lock session ends, as when its host dies.
	admin, err := f.ControlInstance.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name LIKE 'daisychain-lock move "move-acme"%'`); err != nil {
		t.Fatal(err)
	}
	ab, err := mover.Abandoned(ctx, "move-acme")
	for i := 0; err == nil && !ab && i < 50; i++ { // the backend may take a moment to end
		ab, err = mover.Abandoned(ctx, "move-acme")
	}
	if err != nil || !ab {
		t.Fatalf("Abandoned once its lock session ended = %v, %v; want true", ab, err)
	}
	rep, err := mover.Resume(ctx, "move-acme")
	if err != nil || !rep.RolledBack {
		t.Fatalf("Resume of the abandoned move: %+v, %v; want it rolled back", rep, err)
	}
	release()
	if err := <-done; err == nil {
		t.Error("the mover whose locks were lost went on to finish its move")
	}
	if ab, err := mover.Abandoned(ctx, "move-acme"); err != nil || ab {
		t.Errorf("Abandoned of a move that is over = %v, %v; want false", ab, err)
	}
	if r, err := f.Routes.Resolve(ctx, "acme"); err != nil || r.Instance != "pg-a" || r.Paused {
		t.Errorf("route of acme = %+v, %v; want pg-a", r, err)
	}
}
