package flags_test

import (
	"context"
	"testing"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
)

// TestCacheSizeSettings: PostgresConfig.RouteCacheSize and
// ResolverConfig.TenantCacheSize bound their caches as set, 0 by their
// defaults, and a negative size does not bound them.
func TestCacheSizeSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	client := flagstest.Client(t, flags.NewMemoryProvider())
	for _, c := range []struct {
		name             string
		size             int
		routes, resolver int // the bounds wanted (0: none)
	}{
		{"7", 7, 7, 7},
		{"0 (default)", 0, flags.RouteCacheSizeDefault, flags.TenantCacheSizeDefault},
		{"-1 (unbounded)", -1, 0, 0},
	} {
		p, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{RouteCacheSize: c.size})
		if err != nil {
			t.Fatal(err)
		}
		r, err := flags.NewResolver(client, e.catalog, &flags.ResolverConfig{TenantCacheSize: c.size})
		if err != nil {
			t.Fatal(err)
		}
		routes, tenants := flags.CacheBounds(p, r)
		p.Close()
		if routes != c.routes || tenants != c.resolver {
			t.Errorf("size %s: route cache bound %d, Resolver bound %d; want %d and %d (0: none)", c.name, routes, tenants, c.routes, c.resolver)
		}
	}
}
