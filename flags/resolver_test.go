package flags_test

import (
	"context"
	"errors"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
)

// memCatalog has instances pg-a and pg-b and tenant t1 (database tenant_1)
// on pg-a.
func memCatalog(t *testing.T) (*fleet.MemoryCatalog, fleet.Instance, fleet.Instance) {
	t.Helper()
	ctx := context.Background()
	c := fleet.NewMemoryCatalog()
	a := fleet.Instance{ID: "pg-a", Admin: "postgres://a", Endpoint: fleet.Endpoint{Host: "10.0.0.1", Port: 5432}}
	b := fleet.Instance{ID: "pg-b", Admin: "postgres://b", Endpoint: fleet.Endpoint{Host: "10.0.0.2", Port: 5433}}
	for _, i := range []fleet.Instance{a, b} {
		if err := c.RegisterInstance(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.AddTenant(ctx, fleet.Tenant{ID: "t1", Database: "tenant_1", Instance: "pg-a"}); err != nil {
		t.Fatal(err)
	}
	return c, a, b
}

func TestResolverFallsBackToCatalog(t *testing.T) {
	ctx := context.Background()
	cat, a, b := memCatalog(t)
	p := flags.NewMemoryProvider()
	res, err := flags.NewResolver(flagstest.Client(t, p), cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.Resolve(ctx, "t1")
	if want := flags.RouteTo(a, "tenant_1", 0); err != nil || got != want {
		t.Fatalf("Resolve = %v, %v; want the catalog's %v", got, err, want)
	}
	if _, err := res.Resolve(ctx, "nobody"); !errors.Is(err, fleet.ErrTenantNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}
	if err := p.Publish(ctx, "t1", flags.RouteTo(b, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	if got, err := res.Resolve(ctx, "t1"); err != nil || got.Instance != "pg-b" || got.Epoch != 1 {
		t.Fatalf("after publish: %v, %v", got, err)
	}
}

// TestResolverServesLastValidRoute: a flag to an instance the catalog
// does not know, to another endpoint than the catalog's, or malformed is
// refused without an outage: the Resolver serves the last valid route
// (or the catalog's, if it has none) and says so once per bad route.
func TestResolverServesLastValidRoute(t *testing.T) {
	ctx := context.Background()
	cat, a, b := memCatalog(t)
	stub := &stubClient{}
	res, _ := flags.NewResolver(stub, cat, &flags.ResolverConfig{CatalogTTL: -1})
	events, stop := res.Subscribe(flags.EventRouteRefused)
	defer stop()

	// No valid route yet: the catalog's serves.
	elsewhere := flags.RouteTo(a, "tenant_1", 1)
	elsewhere.Instance = "pg-unknown"
	stub.set(elsewhere.FlagValue(), "")
	if got, err := res.Resolve(ctx, "t1"); err != nil || got != flags.RouteTo(a, "tenant_1", 0) {
		t.Errorf("route to an unknown instance, nothing valid before: %v, %v; want the catalog's", got, err)
	}
	expectRefusal(t, events, elsewhere, flags.RouteTo(a, "tenant_1", 0), flags.ErrUnknownInstance)

	valid := flags.RouteTo(b, "tenant_1", 2)
	stub.set(valid.FlagValue(), "")
	if got, err := res.Resolve(ctx, "t1"); err != nil || got != valid {
		t.Fatalf("valid route: %v, %v", got, err)
	}
	moved := flags.RouteTo(a, "tenant_1", 3)
	moved.Endpoint.Host = "evil.example"
	stub.set(moved.FlagValue(), "")
	for range 3 { // one event, however often it is resolved
		if got, err := res.Resolve(ctx, "t1"); err != nil || got != valid {
			t.Errorf("route to another endpoint: %v, %v; want the last valid %v", got, err, valid)
		}
	}
	expectRefusal(t, events, moved, valid, flags.ErrEndpointMismatch)
	stub.set(map[string]any{"instance": "pg-a"}, "")
	if got, err := res.Resolve(ctx, "t1"); err != nil || got != valid {
		t.Errorf("malformed route: %v, %v; want the last valid %v", got, err, valid)
	}
	expectRefusal(t, events, flags.Route{}, valid, flags.ErrInvalidRoute)
	select {
	case e := <-events:
		t.Errorf("unexpected event %+v", e)
	default:
	}

	// Once the catalog knows the endpoint, the route is followed.
	stub.set(moved.FlagValue(), "")
	if err := cat.RegisterInstance(ctx, fleet.Instance{ID: "pg-a", Admin: "x", Endpoint: fleet.Endpoint{Host: "evil.example", Port: 5432}}); err != nil {
		t.Fatal(err)
	}
	if got, err := res.Resolve(ctx, "t1"); err != nil || got != moved {
		t.Errorf("after the catalog caught up: %v, %v; want %v", got, err, moved)
	}
}

func expectRefusal(t *testing.T, events <-chan *flags.ResolverEvent, refused, serving flags.Route, why error) {
	t.Helper()
	select {
	case e := <-events:
		if e.Kind != flags.EventRouteRefused || e.Tenant != "t1" || e.Refused != refused || e.Serving != serving || !errors.Is(e.Err, why) {
			t.Errorf("event %s tenant %s refused %v serving %v (%v); want route_refused t1 %v serving %v (%v)",
				e.Kind, e.Tenant, e.Refused, e.Serving, e.Err, refused, serving, why)
		}
	default:
		t.Errorf("no event for the refused route %v", refused)
	}
}

func TestResolverIgnoresOlderEpoch(t *testing.T) {
	ctx := context.Background()
	cat, a, b := memCatalog(t)
	stub := &stubClient{}
	res, _ := flags.NewResolver(stub, cat, nil)

	stub.set(flags.RouteTo(b, "tenant_1", 5).FlagValue(), "")
	if got, err := res.Resolve(ctx, "t1"); err != nil || got.Epoch != 5 {
		t.Fatalf("Resolve = %v, %v", got, err)
	}
	// A provider that went back (an old replica, a restored backup...)
	// does not move the tenant back.
	stub.set(flags.RouteTo(a, "tenant_1", 4).FlagValue(), "")
	if got, err := res.Resolve(ctx, "t1"); err != nil || got.Epoch != 5 || got.Instance != "pg-b" {
		t.Errorf("older epoch: %v, %v; want epoch 5 on pg-b kept", got, err)
	}
	// Nor does a provider that lost the route (the catalog's is epoch 0).
	stub.set(nil, openfeature.FlagNotFoundCode)
	if got, err := res.Resolve(ctx, "t1"); err != nil || got.Epoch != 5 {
		t.Errorf("lost route: %v, %v; want epoch 5 kept", got, err)
	}
	stub.set(flags.RouteTo(a, "tenant_1", 6).FlagValue(), "")
	if got, err := res.Resolve(ctx, "t1"); err != nil || got.Epoch != 6 || got.Instance != "pg-a" {
		t.Errorf("newer epoch: %v, %v", got, err)
	}
	// Errors other than "not found" are returned, not guessed around.
	stub.set(nil, openfeature.ProviderNotReadyCode)
	if _, err := res.Resolve(ctx, "t1"); err == nil {
		t.Error("provider not ready: no error")
	}
}
