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

func TestResolverRefusesUnknownInstanceAndEndpoint(t *testing.T) {
	ctx := context.Background()
	cat, a, _ := memCatalog(t)
	p := flags.NewMemoryProvider()
	res, _ := flags.NewResolver(flagstest.Client(t, p), cat, nil)

	elsewhere := flags.RouteTo(a, "tenant_1", 1)
	elsewhere.Instance = "pg-unknown"
	if err := p.Publish(ctx, "t1", elsewhere); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Resolve(ctx, "t1"); !errors.Is(err, flags.ErrUnknownInstance) {
		t.Errorf("route to an unknown instance: %v, want ErrUnknownInstance", err)
	}
	moved := flags.RouteTo(a, "tenant_1", 2)
	moved.Endpoint.Host = "evil.example"
	if err := p.Publish(ctx, "t1", moved); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Resolve(ctx, "t1"); !errors.Is(err, flags.ErrEndpointMismatch) {
		t.Errorf("route to another endpoint: %v, want ErrEndpointMismatch", err)
	}
	// Once the catalog knows the instance, the route goes through
	// (refusals are never cached).
	if err := cat.RegisterInstance(ctx, fleet.Instance{ID: "pg-a", Admin: "x", Endpoint: fleet.Endpoint{Host: "evil.example", Port: 5432}}); err != nil {
		t.Fatal(err)
	}
	if got, err := res.Resolve(ctx, "t1"); err != nil || got.Epoch != 2 {
		t.Errorf("after the catalog caught up: %v, %v", got, err)
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
	stub.set(map[string]any{"instance": "pg-a"}, "")
	if _, err := res.Resolve(ctx, "t1"); !errors.Is(err, flags.ErrInvalidRoute) {
		t.Errorf("malformed value: %v", err)
	}
}
