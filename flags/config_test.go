package flags_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
)

// nowhere is a connection string no test connects to: a config refused
// before connecting never reaches it.
const nowhere = "postgres://nobody@127.0.0.1:1/nothing?connect_timeout=1"

// TestNewRouterRefusesBadConfigs: each setting NewRouter cannot work
// with is refused, with an error wrapping ErrInvalidConfig that names
// the field; the negative values that have a meaning are accepted.
func TestNewRouterRefusesBadConfigs(t *testing.T) {
	cat, _, _ := memCatalog(t)
	res, err := flags.NewResolver(flagstest.Client(t, flags.NewMemoryProvider()), cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := func() flags.RouterConfig {
		return flags.RouterConfig{Resolver: res, PoolConfig: flags.PoolConfigFrom(nowhere)}
	}
	for _, c := range []struct {
		field  string
		change func(*flags.RouterConfig)
	}{
		{"Resolver", func(c *flags.RouterConfig) { c.Resolver = nil }},
		{"PoolConfig", func(c *flags.RouterConfig) { c.PoolConfig = nil }},
		{"PollInterval", func(c *flags.RouterConfig) { c.PollInterval = -time.Millisecond }},
		{"RouteMaxAge", func(c *flags.RouterConfig) { c.RouteMaxAge = flags.RouteMaxAgeMin - 1 }},
		{"MaxConnsPerInstance", func(c *flags.RouterConfig) { c.MaxConnsPerInstance = flags.MaxConnsPerInstanceLimit + 1 }},
	} {
		cfg := good()
		c.change(&cfg)
		r, err := flags.NewRouter(&cfg)
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, flags.ErrInvalidConfig) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewRouter with a bad %s: %v, want ErrInvalidConfig naming %s", c.field, err, c.field)
		}
	}
	if _, err := flags.NewRouter(nil); !errors.Is(err, flags.ErrInvalidConfig) || !errors.Is(err, fleet.ErrInvalid) {
		t.Errorf("NewRouter(nil): %v, want ErrInvalidConfig, which is also fleet.ErrInvalid", err)
	}
	cfg := good()
	cfg.HoldLimit, cfg.RouteMaxAge, cfg.PoolIdleTimeout = -1, -1, -1
	cfg.MaxConnsPerInstance = -1
	r, err := flags.NewRouter(&cfg)
	if err != nil {
		t.Fatalf("NewRouter with the documented negative settings: %v", err)
	}
	r.Close()
	cfg = good()
	cfg.MaxConnsPerInstance, cfg.RouteMaxAge = flags.MaxConnsPerInstanceLimit, flags.RouteMaxAgeMin
	if r, err = flags.NewRouter(&cfg); err != nil {
		t.Fatalf("NewRouter with MaxConnsPerInstance and RouteMaxAge at their limits: %v", err)
	}
	r.Close()
}

// TestNewResolverRefusesMissingArguments: no client or no catalog is an
// invalid config.
func TestNewResolverRefusesMissingArguments(t *testing.T) {
	cat, _, _ := memCatalog(t)
	client := flagstest.Client(t, flags.NewMemoryProvider())
	if _, err := flags.NewResolver(nil, cat, nil); !errors.Is(err, flags.ErrInvalidConfig) || !strings.Contains(err.Error(), "client") {
		t.Errorf("NewResolver without a client: %v, want ErrInvalidConfig naming the client", err)
	}
	if _, err := flags.NewResolver(client, nil, nil); !errors.Is(err, flags.ErrInvalidConfig) || !strings.Contains(err.Error(), "catalog") {
		t.Errorf("NewResolver without a catalog: %v, want ErrInvalidConfig naming the catalog", err)
	}
	// Every negative setting has a meaning (see ResolverConfig).
	if _, err := flags.NewResolver(client, cat, &flags.ResolverConfig{CatalogTTL: -1, CatalogRetry: -1, TenantCacheSize: -1}); err != nil {
		t.Errorf("NewResolver with the documented negative settings: %v", err)
	}
}

// TestNewPostgresProviderRefusesBadConfigs: each bad setting is refused
// before connecting (the connection string leads nowhere), with an error
// wrapping ErrInvalidConfig that names the field.
func TestNewPostgresProviderRefusesBadConfigs(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		field string
		opts  flags.PostgresConfig
	}{
		{"Schema", flags.PostgresConfig{Schema: strings.Repeat("s", flags.SchemaMaxLen+1)}},
		{"PingInterval", flags.PostgresConfig{PingInterval: -time.Second}},
		{"FetchTimeout", flags.PostgresConfig{FetchTimeout: -time.Second}},
	} {
		p, err := flags.NewPostgresProvider(ctx, nowhere, &c.opts)
		if err == nil {
			p.Close()
		}
		if !errors.Is(err, flags.ErrInvalidConfig) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewPostgresProvider with a bad %s: %v, want ErrInvalidConfig naming %s", c.field, err, c.field)
		}
	}
}
