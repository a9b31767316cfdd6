package flags_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
)

// TestRouterNegativeSettings: the negative settings of RouterConfig do
// what they say. HoldLimit: a paused route fails Acquire at once with
// ErrPaused. RouteMaxAge: every Acquire evaluates the route, events or
// not. MaxConnsPerInstance: no cap is kept. PoolIdleTimeout: pools stay
// open however long unused, while idle tenants are still forgotten. The
// sweeps are run by the test, not waited for.
func TestRouterNegativeSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	routes := flags.NewMemoryProvider()
	client := &countingClient{Client: flagstest.Client(t, routes), n: map[string]int{}}
	newRouter := func(cfg flags.RouterConfig) *flags.Router { return e.routerThrough(t, client, cfg) }
	use := func(r *flags.Router) {
		t.Helper()
		if err := r.Do(ctx, "t1", func(c *pgxpool.Conn) error { _, err := c.Exec(ctx, "SELECT 1"); return err }); err != nil {
			t.Fatal(err)
		}
	}

	negative := newRouter(flags.RouterConfig{RouteMaxAge: -1, MaxConnsPerInstance: -1, PoolIdleTimeout: -1})
	defaults := newRouter(flags.RouterConfig{})
	const calls = 10
	use(negative) // opens the pool
	before := client.count("t1")
	for range calls {
		use(negative)
	}
	if n := client.count("t1") - before; n != calls {
		t.Errorf("RouteMaxAge -1: %d evaluations for %d Acquires; want one each", n, calls)
	}
	use(defaults)
	if flags.Capped(negative, "pg-a") || !flags.Capped(defaults, "pg-a") {
		t.Errorf("MaxConnsPerInstance -1 capped: %v, default capped: %v; want no cap, and the default one",
			flags.Capped(negative, "pg-a"), flags.Capped(defaults, "pg-a"))
	}
	flags.Sweep(negative)
	flags.Sweep(defaults)
	if tenants, pools := flags.RouterMemory(negative); tenants != 0 || pools != 1 {
		t.Errorf("PoolIdleTimeout -1, after the idle timeout's sweeps: %d tenants, %d pools; want the tenant forgotten and its pool open", tenants, pools)
	}
	if tenants, pools := flags.RouterMemory(defaults); tenants != 0 || pools != 0 {
		t.Errorf("default PoolIdleTimeout, after its sweeps: %d tenants, %d pools; want both gone", tenants, pools)
	}

	failFast := newRouter(flags.RouterConfig{HoldLimit: -1})
	paused := flags.RouteTo(e.instA, "tenant_1", 1)
	paused.Paused = true
	if err := routes.Publish(ctx, "t1", paused); err != nil {
		t.Fatal(err)
	}
	// The default hold limit is longer: a wait would end with the context.
	bounded, cancel := context.WithTimeout(ctx, flags.HoldLimitDefault/2)
	defer cancel()
	if c, err := failFast.Acquire(bounded, "t1"); !errors.Is(err, flags.ErrPaused) {
		if c != nil {
			c.Release()
		}
		t.Errorf("HoldLimit -1 on a paused route: %v; want ErrPaused at once", err)
	}
}
