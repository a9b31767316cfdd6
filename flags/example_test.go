package flags_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
	"github.com/open-feature/go-sdk/openfeature/memprovider"
	"github.com/open-feature/go-sdk/openfeature/multi"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// exampleCatalog has instances pg-a and pg-b, and tenant acme on pg-a.
func exampleCatalog(ctx context.Context) (*fleet.MemoryCatalog, fleet.Instance, fleet.Instance) {
	catalog := fleet.NewMemoryCatalog()
	a := fleet.Instance{ID: "pg-a", Admin: "postgres://admin@10.0.0.1/postgres", Endpoint: fleet.Endpoint{Host: "10.0.0.1", Port: 5432}}
	b := fleet.Instance{ID: "pg-b", Admin: "postgres://admin@10.0.0.2/postgres", Endpoint: fleet.Endpoint{Host: "10.0.0.2", Port: 5432}}
	_ = catalog.RegisterInstance(ctx, a)
	_ = catalog.RegisterInstance(ctx, b)
	_ = catalog.AddTenant(ctx, fleet.Tenant{ID: "acme", Database: "acme", Instance: "pg-a"})
	return catalog, a, b
}

func ExampleResolver() {
	ctx := context.Background()
	catalog, a, b := exampleCatalog(ctx)

	routes := flags.NewMemoryProvider()
	api := isolated.NewAPI() // never the global singleton
	defer func() { _ = api.Shutdown(ctx) }()
	if err := api.SetProviderAndWait(ctx, routes); err != nil {
		fmt.Println(err)
		return
	}
	resolver, err := flags.NewResolver(api.NewClient(), catalog, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	show := func() {
		r, err := resolver.Resolve(ctx, "acme")
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(r)
	}

	show() // no route published: the catalog's, epoch 0

	pause := flags.RouteTo(a, "acme", 1) // a cutover holds new work...
	pause.Paused = true
	_ = routes.Publish(ctx, "acme", pause)
	show()

	_ = routes.Publish(ctx, "acme", flags.RouteTo(b, "acme", 2)) // ...and lets it go to the target
	show()

	err = routes.Publish(ctx, "acme", flags.RouteTo(a, "acme", 1)) // nobody goes back
	fmt.Println(errors.Is(err, flags.ErrStaleEpoch))

	rogue := flags.RouteTo(b, "acme", 3)
	rogue.Instance = "pg-x" // not in the catalog
	checked := flags.NewMemoryProviderWithConfig(&flags.MemoryConfig{Catalog: catalog})
	err = checked.Publish(ctx, "acme", rogue) // a publisher with the catalog refuses it
	fmt.Println(errors.Is(err, flags.ErrUnknownInstance))

	_ = routes.Publish(ctx, "acme", rogue) // one without publishes it...
	show()                                 // ...and the Resolver keeps serving the last valid route
	// Output:
	// pg-a@10.0.0.1:5432/acme epoch 0
	// pg-a@10.0.0.1:5432/acme epoch 1 (paused)
	// pg-b@10.0.0.2:5432/acme epoch 2
	// true
	// true
	// pg-b@10.0.0.2:5432/acme epoch 2
}

// Layer daisychain's routes over the host application's own provider with
// the OpenFeature multi-provider: the first provider that has a flag
// answers, so RouteFlagKey comes from the routes provider (for tenants
// with a published route) and every other flag from the host's.
func Example_layered() {
	ctx := context.Background()
	catalog, _, b := exampleCatalog(ctx)

	hostProvider := memprovider.NewInMemoryProvider(map[string]memprovider.InMemoryFlag{
		"new-checkout": {Key: "new-checkout", State: memprovider.Enabled, DefaultVariant: "on",
			Variants: map[string]any{"on": true, "off": false}},
	})
	routes := flags.NewMemoryProvider() // or a *flags.PostgresProvider
	layered, err := multi.NewProvider(multi.StrategyFirstMatch,
		multi.WithProvider("daisychain-routes", routes),
		multi.WithProvider("host", hostProvider))
	if err != nil {
		fmt.Println(err)
		return
	}
	api := isolated.NewAPI()
	defer func() { _ = api.Shutdown(ctx) }()
	if err := api.SetProviderAndWait(ctx, layered); err != nil {
		fmt.Println(err)
		return
	}
	client := api.NewClient()
	resolver, _ := flags.NewResolver(client, catalog, nil)

	_ = routes.Publish(ctx, "acme", flags.RouteTo(b, "acme", 1))
	r, _ := resolver.Resolve(ctx, "acme")
	fmt.Println(r)
	fmt.Println(client.Boolean(ctx, "new-checkout", false, openfeature.NewEvaluationContext("acme", nil)))
	// Output:
	// pg-b@10.0.0.2:5432/acme epoch 1
	// true
}

// A Convert publishes the routes of all its tenants at once, and Retire
// forgets a route once the catalog says the same, so that the route store
// keeps overrides, not history.
func ExampleBatchPublisher() {
	ctx := context.Background()
	catalog, a, b := exampleCatalog(ctx)
	_ = catalog.AddTenant(ctx, fleet.Tenant{ID: "globex", Database: "globex", Instance: "pg-a"})
	routes := flags.NewMemoryProviderWithConfig(&flags.MemoryConfig{Catalog: catalog})

	err := routes.PublishMany(ctx, []flags.TenantRoute{
		{Tenant: "acme", Route: flags.RouteTo(b, "acme", 1)},
		{Tenant: "globex", Route: flags.RouteTo(b, "globex", 1)},
	})
	fmt.Println(err)
	_ = routes.Publish(ctx, "globex", flags.RouteTo(a, "globex", 2))
	err = routes.PublishMany(ctx, []flags.TenantRoute{ // all or nothing
		{Tenant: "acme", Route: flags.RouteTo(a, "acme", 2)},
		{Tenant: "globex", Route: flags.RouteTo(b, "globex", 2)},
	})
	fmt.Println(err)

	_ = catalog.Assign(ctx, "acme", "pg-b", nil) // the move is recorded
	forgotten, err := routes.Forget(ctx, "acme", 1)
	fmt.Println(forgotten, err)
	_, published := routes.Lookup("acme")
	fmt.Println(published)
	// Output:
	// <nil>
	// flags: route epoch is not newer than the current one: nothing published: 1 tenant(s) refused: "globex" at epoch 2 refused epoch 2
	// true <nil>
	// false
}
