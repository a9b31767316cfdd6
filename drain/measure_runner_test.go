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
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// publishedRoutes reads the routes a MemoryProvider holds; dry runs
// never read them.
type publishedRoutes struct{ *flags.MemoryProvider }

func (p publishedRoutes) Resolve(ctx context.Context, tenantID string) (flags.Route, error) {
	r, _, err := p.Published(ctx, tenantID)
	return r, err
}

// TestDryRunsMeasureOnlyTheirInstances: a drain measures the drained
// instance and those its tenants may go to, a refill its instance and
// sources, so an instance outside the plan (here one that cannot even be
// reached) is not connected to.
func TestDryRunsMeasureOnlyTheirInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := fleet.NewMemoryCatalog()
	for _, id := range []string{"pg1", "pg2"} {
		inst := localpgtest.Start(t, &localpg.Config{Name: id, Password: "pw-" + id})
		if err := cat.RegisterInstance(ctx, fleet.Instance{ID: id, Admin: inst.ConnString("postgres"),
			Endpoint: fleet.Endpoint{Host: localpg.Host, Port: inst.Port()}}); err != nil {
			t.Fatal(err)
		}
		if id == "pg1" {
			for _, db := range []string{"acme", "globex"} {
				localpgtest.CreateDatabase(t, inst, db)
				if err := cat.AddTenant(ctx, fleet.Tenant{ID: db, Database: db, Instance: id}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := cat.RegisterInstance(ctx, fleet.Instance{ID: "down", Admin: "postgres://postgres:sekrit@127.0.0.1:1/postgres",
		Endpoint: fleet.Endpoint{Host: localpg.Host, Port: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := cat.AddTenant(ctx, fleet.Tenant{ID: "initech", Database: "initech", Instance: "down"}); err != nil {
		t.Fatal(err)
	}
	routes := flags.NewMemoryProvider()
	mover, err := cutover.New(&cutover.Config{Catalog: cat, Publisher: routes, Routes: publishedRoutes{routes}})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: cat, Mover: mover})
	if err != nil {
		t.Fatal(err)
	}

	p, err := runner.DryRun(ctx, "pg1", drain.Threshold{MaxTenants: 1}, &drain.DrainOpts{Exclude: []string{"down"}})
	if err != nil || len(p.Moves) != 1 || p.Moves[0].To != "pg2" {
		t.Errorf("dry run of a drain that excludes the unreachable instance: %v, %v; want one move to pg2", p, err)
	}
	p, err = runner.DryRunRefill(ctx, "pg2", []string{"pg1"}, drain.Threshold{MaxTenants: 1}, nil)
	if err != nil || len(p.Moves) != 1 {
		t.Errorf("dry run of a refill from pg1: %v, %v; want one move", p, err)
	}
	// An instance the plan may place tenants on must be measured.
	if _, err := runner.DryRun(ctx, "pg1", drain.Threshold{MaxTenants: 1}, nil); err == nil ||
		!strings.Contains(err.Error(), "down") || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("dry run of a drain that may place tenants on the unreachable instance: %v", err)
	}
	if _, err := runner.DryRun(ctx, "pg1", drain.Threshold{MaxTenants: 1}, &drain.DrainOpts{Exclude: []string{"dwon"}}); !errors.Is(err, drain.ErrInvalid) ||
		!strings.Contains(err.Error(), `"dwon"`) {
		t.Errorf("dry run excluding an instance not in the catalog: %v, want ErrInvalid naming it", err)
	}
	// Onto names the only instances tenants may go to: the unreachable
	// one is neither measured nor needs excluding.
	p, err = runner.DryRun(ctx, "pg1", drain.Threshold{MaxTenants: 1}, &drain.DrainOpts{Onto: []string{"pg2"}})
	if err != nil || len(p.Moves) != 1 || p.Moves[0].To != "pg2" {
		t.Errorf("dry run of a drain onto pg2: %v, %v; want one move to pg2", p, err)
	}
	if _, err := runner.DryRun(ctx, "pg1", drain.Threshold{MaxTenants: 1}, &drain.DrainOpts{Onto: []string{"pg9"}}); !errors.Is(err, drain.ErrInvalid) ||
		!strings.Contains(err.Error(), `"pg9"`) {
		t.Errorf("dry run onto an instance not in the catalog: %v, want ErrInvalid naming it", err)
	}
	if _, err := runner.DryRun(ctx, "pg9", drain.Threshold{MaxTenants: 1}, &drain.DrainOpts{Onto: []string{"pg2"}}); !errors.Is(err, drain.ErrInvalid) ||
		!strings.Contains(err.Error(), `the instance to drain, "pg9"`) {
		t.Errorf("dry run of a drain of an instance not in the catalog, onto pg2: %v, want ErrInvalid naming the drained instance", err)
	}
}
