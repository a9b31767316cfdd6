package drain_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestResumeChainLockedAndRetires: while a chain runs, ResumeChain of it
// is refused, naming the chain; a chain whose drain stage failed because
// a Retire failed is resumed: the failed Retire is done (the source copy
// dropped), and the chain completes.
func TestResumeChainLockedAndRetires(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a chain")
	}
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{
		Instances: []string{"pg-a", "pg-s"},
		Limits:    fleet.Limits{MaxTenants: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for _, id := range []string{"t0", "t1"} {
		if err := f.AddTenant(ctx, id, id, "pg-a", ""); err != nil {
			t.Fatal(err)
		}
	}
	reached, release := make(chan struct{}), make(chan struct{})
	var retires atomic.Int32
	mover, err := f.Mover(&cutover.Config{Converter: f.Converter(), WindowBudget: 30 * time.Second,
		BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepRetire && retires.Add(1) == 1 {
				close(reached)
				<-release
				return errors.New("injected: the source is unreachable")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Journal: f.Journal})
	if err != nil {
		t.Fatal(err)
	}
	req := drain.ChainRequest{ID: "chain-r", Instances: []string{"pg-a"}, Spares: []string{"pg-s"},
		Threshold: drain.Threshold{MaxTenants: 1}}
	done := make(chan error, 1)
	go func() {
		_, err := runner.Chain(ctx, req)
		done <- err
	}()
	<-reached
	before := len(entriesOf(t, f, "chain-r"))
	_, err = runner.ResumeChain(ctx, "chain-r")
	if !errors.Is(err, drain.ErrChainInProgress) || !strings.Contains(err.Error(), `"chain-r"`) {
		t.Errorf("ResumeChain of a running chain: %v, want a refusal naming the chain", err)
	}
	if after := len(entriesOf(t, f, "chain-r")); after != before {
		t.Errorf("the refused ResumeChain journaled %d entries", after-before)
	}
	close(release)
	if err := <-done; err == nil {
		t.Fatal("the chain whose Retire failed reported success")
	}
	moved := tenantsOn(t, f, "pg-s")
	if len(moved) != 1 {
		t.Fatalf("tenants on the spare after the drain: %v, want 1", moved)
	}
	if !hasDatabase(t, f, "pg-a", moved[0]) {
		t.Fatal("the failed Retire dropped the source copy")
	}

	if _, err := runner.ResumeChain(ctx, "chain-r"); err != nil {
		t.Fatalf("ResumeChain: %v", err)
	}
	if hasDatabase(t, f, "pg-a", moved[0]) {
		t.Errorf("the source copy of %s is still on pg-a after ResumeChain: its failed Retire was not done", moved[0])
	}
	for _, id := range []string{"t0", "t1"} {
		if tn, err := f.Catalog.Locate(ctx, id); err != nil || tn.Instance != "pg-a.1" {
			t.Errorf("%s is on %q (%v), want pg-a.1", id, tn.Instance, err)
		}
	}
	if open := openJournals(t, f); len(open) != 0 {
		t.Errorf("open journals after the resumed chain: %v", open)
	}
	// The chain's ID is the chain's: Resume refuses it, and a new chain
	// cannot take it.
	if _, err := mover.Resume(ctx, "chain-r"); !errors.Is(err, cutover.ErrNotAMove) {
		t.Errorf("Resume of a chain's ID: %v, want ErrNotAMove", err)
	}
	if _, err := runner.Chain(ctx, req); !errors.Is(err, cutover.ErrMoveIDUsed) {
		t.Errorf("Chain with a used ID: %v, want ErrMoveIDUsed", err)
	}
}

func entriesOf(t *testing.T, f *cutovertest.Fleet, id string) []cutover.Entry {
	t.Helper()
	es, err := f.Journal.Entries(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func tenantsOn(t *testing.T, f *cutovertest.Fleet, instance string) []string {
	t.Helper()
	on, err := f.Catalog.Tenants(context.Background(), instance)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tn := range on {
		ids = append(ids, tn.ID)
	}
	return ids
}

// hasDatabase reports whether the instance has the database, fenced or
// not.
func hasDatabase(t *testing.T, f *cutovertest.Fleet, instance, db string) bool {
	t.Helper()
	return localpgtest.HasDatabase(t, f.Instances[instance], db)
}

// openJournals lists the open moves and chains.
func openJournals(t *testing.T, f *cutovertest.Fleet) []string {
	t.Helper()
	var all []string
	for _, kind := range []cutover.Kind{cutover.KindMove, cutover.KindChain} {
		open, err := f.Journal.Open(context.Background(), kind)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, open...)
	}
	return all
}
