package flags_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestPublishersCheckTheCatalog: a publisher given a catalog refuses a
// route to an instance the catalog does not know, or to another endpoint
// than the catalog's, with an error naming it, and publishes nothing;
// without a catalog it publishes any valid route, as documented.
func TestPublishersCheckTheCatalog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	catalog, _, b := memCatalog(t)
	control := localpgtest.Start(t, &localpg.Config{Name: "control"})
	localpgtest.CreateDatabase(t, control, "control")
	type publisher interface {
		flags.Publisher
		Published(ctx context.Context, tenantID string) (flags.Route, bool, error)
	}
	pg, err := flags.NewPostgresProvider(ctx, control.ConnString("control"), &flags.PostgresConfig{Catalog: catalog})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for name, p := range map[string]publisher{
		"memory":   flags.NewMemoryProviderWithConfig(&flags.MemoryConfig{Catalog: catalog}),
		"postgres": pg,
	} {
		t.Run(name, func(t *testing.T) {
			unknown := flags.RouteTo(b, "tenant_1", 1)
			unknown.Instance = "pg-rogue"
			err := p.Publish(ctx, "t1", unknown)
			if !errors.Is(err, flags.ErrUnknownInstance) || !strings.Contains(err.Error(), "pg-rogue") {
				t.Errorf("route to an unknown instance: %v; want ErrUnknownInstance naming pg-rogue", err)
			}
			elsewhere := flags.RouteTo(b, "tenant_1", 1)
			elsewhere.Endpoint.Port++
			err = p.Publish(ctx, "t1", elsewhere)
			if !errors.Is(err, flags.ErrEndpointMismatch) || !strings.Contains(err.Error(), elsewhere.Endpoint.String()) {
				t.Errorf("route to another endpoint: %v; want ErrEndpointMismatch naming %s", err, elsewhere.Endpoint)
			}
			if got, ok, err := p.Published(ctx, "t1"); err != nil || ok {
				t.Errorf("after refusals: published %v, %v, %v; want nothing", got, ok, err)
			}
			if err := p.Publish(ctx, "t1", flags.RouteTo(b, "tenant_1", 1)); err != nil {
				t.Errorf("a route the catalog backs: %v", err)
			}
			// A refusal is not remembered: once the instance is
			// registered, its route is published at once.
			c := fleet.Instance{ID: "pg-c-" + name, Admin: "postgres://c", Endpoint: fleet.Endpoint{Host: "10.9.9.9", Port: 5432}}
			if err := p.Publish(ctx, "t2", flags.RouteTo(c, "tenant_2", 1)); !errors.Is(err, flags.ErrUnknownInstance) {
				t.Errorf("a route to %s before it is registered: %v; want ErrUnknownInstance", c.ID, err)
			}
			if err := catalog.RegisterInstance(ctx, c); err != nil {
				t.Fatal(err)
			}
			if err := p.Publish(ctx, "t2", flags.RouteTo(c, "tenant_2", 1)); err != nil {
				t.Errorf("a route to an instance registered just now: %v", err)
			}
		})
	}
	unchecked := flags.NewMemoryProvider()
	rogue := flags.RouteTo(b, "tenant_1", 1)
	rogue.Instance = "pg-rogue"
	if err := unchecked.Publish(ctx, "t1", rogue); err != nil {
		t.Errorf("without a catalog: %v; want any valid route published", err)
	}
}
