package cutover_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// memoryMover is a Mover over an in-memory catalog, provider and journal,
// for what needs no database.
func memoryMover(t *testing.T, journal *cutover.MemoryJournal) *cutover.Mover {
	t.Helper()
	ctx := context.Background()
	provider := flags.NewMemoryProvider()
	api := isolated.NewAPI()
	t.Cleanup(func() { api.Shutdown(context.Background()) })
	if err := api.SetProviderAndWait(ctx, provider); err != nil {
		t.Fatal(err)
	}
	catalog := fleet.NewMemoryCatalog()
	resolver, err := flags.NewResolver(api.NewClient(), catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	mover, err := cutover.New(&cutover.Config{Catalog: catalog, Publisher: provider, Routes: resolver, Journal: journal})
	if err != nil {
		t.Fatal(err)
	}
	return mover
}

// TestResumeRefusesAChain: a chain's journal (drain.Chain writes one) is
// not a move's: Resume refuses its ID and appends nothing.
func TestResumeRefusesAChain(t *testing.T) {
	ctx := context.Background()
	journal := &cutover.MemoryJournal{}
	plan, _ := json.Marshal(map[string]any{"id": "chain-1", "instances": []string{"a"}})
	move, _ := json.Marshal(map[string]string{"move": "chain-1-0-drain-t1"})
	for _, e := range []cutover.Entry{
		{Move: "chain-1", Kind: cutover.KindChain, Step: "chain_plan", Status: cutover.StatusFinished, Detail: plan},
		{Move: "chain-1", Step: "chain_drain", Status: cutover.StatusStarted},
		{Move: "chain-1", Step: "chain_move", Status: cutover.StatusStarted, Detail: move},
	} {
		if _, err := journal.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	mover := memoryMover(t, journal)
	if _, err := mover.Resume(ctx, "chain-1"); !errors.Is(err, cutover.ErrNotAMove) {
		t.Errorf("Resume of a chain's ID: %v, want ErrNotAMove", err)
	}
	if err := mover.Retire(ctx, "chain-1"); !errors.Is(err, cutover.ErrNotAMove) {
		t.Errorf("Retire of a chain's ID: %v, want ErrNotAMove", err)
	}
	if open, _ := journal.Open(ctx, cutover.KindMove); len(open) != 0 {
		t.Errorf("open moves: %v, want none (a chain is not a move)", open)
	}
	if open, _ := journal.Open(ctx, cutover.KindChain); len(open) != 1 || open[0] != "chain-1" {
		t.Errorf("open chains: %v, want [chain-1]", open)
	}
	if es, _ := journal.Entries(ctx, "chain-1"); len(es) != 3 {
		t.Errorf("the chain's journal has %d entries after a refused Resume, want 3: %+v", len(es), es[len(es)-1])
	}
}
