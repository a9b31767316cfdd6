package drain_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// noRoutes is a cutover.RouteReader for what reads no route.
type noRoutes struct{}

func (noRoutes) Resolve(context.Context, string) (flags.Route, error) {
	return flags.Route{}, errors.New("no routes here")
}

// TestNewRefusesBadConfigs: each bad field is refused by New with
// ErrInvalid, and the error names it.
func TestNewRefusesBadConfigs(t *testing.T) {
	catalog := fleet.NewMemoryCatalog()
	mover, err := cutover.New(&cutover.Config{Catalog: catalog, Publisher: flags.NewMemoryProvider(), Routes: noRoutes{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field string
		cfg   drain.Config
	}{
		{"Catalog", drain.Config{Mover: mover}},
		{"Mover", drain.Config{Catalog: catalog}},
		{"Concurrency", drain.Config{Catalog: catalog, Mover: mover, Concurrency: -1}},
		{"Measure.Instances", drain.Config{Catalog: catalog, Mover: mover, Measure: &drain.MeasureOpts{Instances: []string{"pg1"}}}},
	} {
		if _, err := drain.New(&c.cfg); !errors.Is(err, drain.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("New with a bad %s: %v, want ErrInvalid naming %s", c.field, err, c.field)
		}
	}
	if _, err := drain.New(nil); !errors.Is(err, drain.ErrInvalid) || !errors.Is(err, fleet.ErrInvalid) {
		t.Errorf("New(nil): %v, want ErrInvalid, which is also fleet.ErrInvalid", err)
	}
	if _, err := drain.New(&drain.Config{Catalog: catalog, Mover: mover}); err != nil {
		t.Errorf("New with a good config: %v", err)
	}
}

// TestRunnerKeepsCallersOptions: a Runner's plans estimate with the
// Concurrency it runs moves at; a caller's options that ask for another
// are refused, naming the field, never silently changed.
func TestRunnerKeepsCallersOptions(t *testing.T) {
	ctx := context.Background()
	catalog := fleet.NewMemoryCatalog()
	mover, err := cutover.New(&cutover.Config{Catalog: catalog, Publisher: flags.NewMemoryProvider(), Routes: noRoutes{}})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: catalog, Mover: mover, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	th := drain.Threshold{MaxTenants: 1}
	if _, err := runner.DryRun(ctx, "pg1", th, &drain.DrainOpts{Concurrency: 3}); !errors.Is(err, drain.ErrInvalid) ||
		!strings.Contains(err.Error(), "DrainOpts.Concurrency") {
		t.Errorf("DryRun with DrainOpts.Concurrency 3 on a Runner of 2: %v, want ErrInvalid naming DrainOpts.Concurrency", err)
	}
	if _, err := runner.Drain(ctx, "pg1", th, &drain.DrainOpts{Concurrency: 3}); !errors.Is(err, drain.ErrInvalid) ||
		!strings.Contains(err.Error(), "DrainOpts.Concurrency") {
		t.Errorf("Drain with DrainOpts.Concurrency 3 on a Runner of 2: %v, want ErrInvalid naming DrainOpts.Concurrency", err)
	}
	if _, err := runner.DryRunRefill(ctx, "pg1", []string{"pg2"}, drain.Threshold{}, &drain.RefillOpts{Concurrency: 3}); !errors.Is(err, drain.ErrInvalid) ||
		!strings.Contains(err.Error(), "RefillOpts.Concurrency") {
		t.Errorf("DryRunRefill with RefillOpts.Concurrency 3 on a Runner of 2: %v, want ErrInvalid naming RefillOpts.Concurrency", err)
	}
	if _, err := runner.Refill(ctx, "pg1", []string{"pg2"}, drain.Threshold{}, &drain.RefillOpts{Concurrency: 3}); !errors.Is(err, drain.ErrInvalid) ||
		!strings.Contains(err.Error(), "RefillOpts.Concurrency") {
		t.Errorf("Refill with RefillOpts.Concurrency 3 on a Runner of 2: %v, want ErrInvalid naming RefillOpts.Concurrency", err)
	}
	// The Runner's own figure, said or left 0, is accepted: what fails
	// then is the empty catalog.
	for _, c := range []int{0, 2} {
		if _, err := runner.DryRun(ctx, "pg1", th, &drain.DrainOpts{Concurrency: c}); err == nil || strings.Contains(err.Error(), "Concurrency") {
			t.Errorf("DryRun with DrainOpts.Concurrency %d on a Runner of 2: %v, want only the missing instance", c, err)
		}
	}
}
