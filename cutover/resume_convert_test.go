package cutover_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// TestResumeConversionCutInItsPause: a conversion that died while pausing
// its tenants' routes one by one is rolled back on Resume: the routes it
// paused are unpaused, and a route it never reached (published by an
// earlier move, at a higher epoch) is left as it is.
func TestResumeConversionCutInItsPause(t *testing.T) {
	ctx := context.Background()
	catalog := fleet.NewMemoryCatalog()
	src := fleet.Instance{ID: "a", Admin: "postgres://x@127.0.0.1:1/postgres", Endpoint: fleet.Endpoint{Host: "127.0.0.1", Port: 1}}
	if err := catalog.RegisterInstance(ctx, src); err != nil {
		t.Fatal(err)
	}
	tenants := []fleet.Tenant{{ID: "t1", Database: "t1", Instance: "a"}, {ID: "t2", Database: "t2", Instance: "a"}}
	for _, tn := range tenants {
		if err := catalog.AddTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	provider := flags.NewMemoryProvider()
	earlier := flags.RouteTo(src, "t1", 3)
	earlier.Move = "an-earlier-move"
	if err := provider.Publish(ctx, "t1", earlier); err != nil {
		t.Fatal(err)
	}
	paused := flags.RouteTo(src, "t2", 1)
	paused.Paused, paused.Move = true, "conv"
	if err := provider.Publish(ctx, "t2", paused); err != nil {
		t.Fatal(err)
	}
	api := isolated.NewAPI()
	defer api.Shutdown(ctx)
	if err := api.SetProviderAndWait(ctx, provider); err != nil {
		t.Fatal(err)
	}
	resolver, err := flags.NewResolver(api.NewClient(), catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	journal := &cutover.MemoryJournal{}
	plan, _ := json.Marshal(map[string]any{"kind": "convert", "move": "conv", "instance": "a", "new_instance": "a.1", "tenants": tenants})
	for _, e := range []cutover.Entry{
		{Move: "conv", Step: cutover.StepPlan, Status: cutover.StatusFinished, Detail: plan},
		{Move: "conv", Step: cutover.StepPreflight, Status: cutover.StatusFinished},
		{Move: "conv", Step: cutover.StepPause, Status: cutover.StatusStarted},
	} {
		if _, err := journal.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	mover, err := cutover.New(&cutover.Config{Catalog: catalog, Publisher: provider, Routes: resolver,
		Journal: journal, Fences: []cutover.Fence{}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mover.Resume(ctx, "conv")
	if err != nil || !rep.RolledBack {
		t.Fatalf("Resume: %v, report %+v", err, rep)
	}
	if r, _, _ := provider.Published(ctx, "t2"); r.Paused || r.Instance != "a" || r.Epoch != 2 {
		t.Errorf("t2 after Resume: %s, want unpaused on a at epoch 2", r)
	}
	if r, _, _ := provider.Published(ctx, "t1"); r != earlier {
		t.Errorf("t1 after Resume: %s, want the earlier move's route untouched", r)
	}
	if open, _ := journal.Open(ctx, cutover.KindMove); len(open) != 0 {
		t.Errorf("open after Resume: %v", open)
	}
}
