package flags_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestResolverMemoryBounded: a Resolver asked about 1,000 tenants remembers
// at most TenantCacheSize (100) of them, and as many catalog answers and
// refusals; a forgotten tenant resolves as a new one does: a route
// published while it was forgotten is followed, and a bad route is
// refused again (and reported again), the catalog's route served instead.
func TestResolverMemoryBounded(t *testing.T) {
	t.Parallel()
	const n, bound = 1000, 100
	ctx := context.Background()
	cat, a, b := memCatalog(t)
	p := flags.NewMemoryProvider()
	var routes []flags.TenantRoute
	for i := range n {
		id := fmt.Sprintf("t-%d", i)
		if err := cat.AddTenant(ctx, fleet.Tenant{ID: id, Database: "tenant_1", Instance: "pg-a"}); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0: // moved to b
			routes = append(routes, flags.TenantRoute{Tenant: id, Route: flags.RouteTo(b, "tenant_1", 1)})
		case 1: // a bad route, to an endpoint of its own
			bad := flags.RouteTo(fleet.Instance{ID: "pg-x", Endpoint: fleet.Endpoint{Host: "10.9.9.9", Port: 1000 + i}}, "tenant_1", 1)
			routes = append(routes, flags.TenantRoute{Tenant: id, Route: bad})
		} // 2: no route, the catalog's
	}
	if err := p.PublishMany(ctx, routes); err != nil {
		t.Fatal(err)
	}
	res, err := flags.NewResolver(flagstest.Client(t, p), cat, &flags.ResolverConfig{TenantCacheSize: bound})
	if err != nil {
		t.Fatal(err)
	}
	events, stop := res.Subscribe(flags.EventRouteRefused)
	defer stop()
	want := func(i int) flags.Route {
		if i%3 == 0 {
			return flags.RouteTo(b, "tenant_1", 1)
		}
		return flags.RouteTo(a, "tenant_1", 0)
	}
	for i := range n {
		if got, err := res.Resolve(ctx, fmt.Sprintf("t-%d", i)); err != nil || got != want(i) {
			t.Fatalf("t-%d: %v, %v; want %v", i, got, err, want(i))
		}
		if tenants, located, refusals := flags.ResolverMemory(res); tenants > bound || located > bound || refusals > bound {
			t.Fatalf("after %d tenants: %d tenants, %d locations, %d refusals held; want at most %d each",
				i+1, tenants, located, refusals, bound)
		}
	}
	if tenants, _, _ := flags.ResolverMemory(res); tenants != bound {
		t.Errorf("%d tenants held after %d; want %d", tenants, n, bound)
	}
	for range n / 3 { // one refusal per bad route
		<-events
	}

	// t-0 and t-1 were forgotten. t-0 moves back to a (epoch 2) meanwhile.
	if err := p.Publish(ctx, "t-0", flags.RouteTo(a, "tenant_1", 2)); err != nil {
		t.Fatal(err)
	}
	if got, err := res.Resolve(ctx, "t-0"); err != nil || got != flags.RouteTo(a, "tenant_1", 2) {
		t.Errorf("forgotten t-0 after a move it missed: %v, %v; want epoch 2 on pg-a", got, err)
	}
	if got, err := res.Resolve(ctx, "t-1"); err != nil || got != flags.RouteTo(a, "tenant_1", 0) {
		t.Errorf("forgotten t-1 with its bad route: %v, %v; want the catalog's", got, err)
	}
	select {
	case e := <-events:
		if e.Tenant != "t-1" || e.Serving != flags.RouteTo(a, "tenant_1", 0) {
			t.Errorf("refusal of forgotten t-1: %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Error("forgotten t-1's bad route not reported again")
	}
	// Once a valid route comes, it is followed.
	if err := p.Publish(ctx, "t-1", flags.RouteTo(b, "tenant_1", 2)); err != nil {
		t.Fatal(err)
	}
	if got, err := res.Resolve(ctx, "t-1"); err != nil || got != flags.RouteTo(b, "tenant_1", 2) {
		t.Errorf("t-1 after a valid route: %v, %v; want epoch 2 on pg-b", got, err)
	}
}

// TestResolverMemoryBoundedPostgres: the same through the PostgreSQL
// provider, each bounded to 100, over 1,000 published routes: neither
// the provider nor the Resolver holds more, and a forgotten tenant gets
// the route published while it was forgotten.
func TestResolverMemoryBoundedPostgres(t *testing.T) {
	t.Parallel()
	const n, bound = 1000, 100
	ctx := context.Background()
	e := newOneEnv(t)
	for i := range n {
		if err := e.catalog.AddTenant(ctx, fleet.Tenant{ID: fmt.Sprintf("t-%d", i), Database: "tenant_1", Instance: "pg-a"}); err != nil {
			t.Fatal(err)
		}
	}
	pub := e.provider(t)
	publishN(t, e, pub, n, 1)
	reader, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{RouteCacheSize: bound})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	res, err := flags.NewResolver(flagstest.Client(t, reader), e.catalog, &flags.ResolverConfig{TenantCacheSize: bound})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got, err := res.Resolve(ctx, fmt.Sprintf("t-%d", i)); err != nil || got.Epoch != 1 {
			t.Fatalf("t-%d: %v, %v", i, got, err)
		}
		tenants, located, refusals := flags.ResolverMemory(res)
		if s := reader.CacheStats(); s.Cached > bound || tenants > bound || located > bound || refusals > bound {
			t.Fatalf("after %d tenants: provider caches %d, Resolver holds %d tenants, %d locations, %d refusals; want at most %d each",
				i+1, s.Cached, tenants, located, refusals, bound)
		}
	}
	if err := pub.Publish(ctx, "t-0", flags.RouteTo(e.instA, "tenant_1", 2)); err != nil {
		t.Fatal(err)
	}
	if got, err := res.Resolve(ctx, "t-0"); err != nil || got.Epoch != 2 {
		t.Errorf("forgotten t-0 after a publish it missed: %v, %v; want epoch 2", got, err)
	}
}

// TestRouterForgetsIdleTenants: a Router keeps state only for the tenants
// with something under way or asked about within PoolIdleTimeout, even
// when their database's pool stays busy for another tenant: 1,000
// tenants on one database, one of which keeps a connection out, are
// forgotten but that one; a tenant waiting on a paused route is kept,
// and woken by its route's event; a forgotten tenant whose route moved
// meanwhile connects where the new route says.
func TestRouterForgetsIdleTenants(t *testing.T) {
	t.Parallel()
	const n = 1000
	ctx := context.Background()
	e := newOneEnv(t)
	localpgtest.CreateDatabase(t, e.a, "tenant_2")
	for i := range n {
		if err := e.catalog.AddTenant(ctx, fleet.Tenant{ID: fmt.Sprintf("t-%d", i), Database: "tenant_1", Instance: "pg-a"}); err != nil {
			t.Fatal(err)
		}
	}
	p := flags.NewMemoryProvider()
	res, err := flags.NewResolver(flagstest.Client(t, p), e.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Only an event wakes a waiting caller within the test's time.
	r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res, PoolIdleTimeout: 100 * time.Millisecond, PollInterval: time.Hour,
		PoolConfig: flagstest.PoolConfig(e.byID, "application_name="+routerApp+"&pool_max_conns=4")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)

	held, err := r.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(held.Release)
	t.Cleanup(release) // before r.Close, which waits for it
	paused := flags.RouteTo(e.instA, "tenant_1", 1)
	paused.Paused = true
	if err := p.Publish(ctx, "t-0", paused); err != nil {
		t.Fatal(err)
	}
	waiter := make(chan string, 1)
	go func() {
		c, err := r.Acquire(ctx, "t-0")
		if err != nil {
			waiter <- err.Error()
			return
		}
		defer c.Release()
		var db string
		if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			db = err.Error()
		}
		waiter <- db
	}()
	waitFor(t, "t-0 to wait", 10*time.Second, func() bool { tenants, _ := flags.RouterMemory(r); return tenants == 2 })
	for i := 1; i < n; i++ {
		id := fmt.Sprintf("t-%d", i)
		if i%2 == 0 { // asked about only
			if _, err := r.Route(ctx, id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		c, err := r.Acquire(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		c.Release()
	}
	waitFor(t, "idle tenants to be forgotten", 30*time.Second, func() bool {
		tenants, _ := flags.RouterMemory(r)
		return tenants == 2
	})
	if got := r.InFlight("t1"); got != 1 {
		t.Errorf("t1, holding a connection: InFlight %d; want 1", got)
	}
	if _, pools := flags.RouterMemory(r); pools != 1 {
		t.Errorf("%d pools open; want tenant_1's, in use", pools)
	}

	// The waiter is woken by its route's event, not by a poll.
	if err := p.Publish(ctx, "t-0", flags.RouteTo(e.instA, "tenant_2", 2)); err != nil {
		t.Fatal(err)
	}
	select {
	case db := <-waiter:
		if db != "tenant_2" {
			t.Errorf("paused t-0 after its route moved on: %s; want tenant_2", db)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("paused t-0 not woken by its route's event")
	}

	// t-5, forgotten, moved meanwhile.
	if err := p.Publish(ctx, "t-5", flags.RouteTo(e.instA, "tenant_2", 1)); err != nil {
		t.Fatal(err)
	}
	var db string
	if err := r.Do(ctx, "t-5", func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	}); err != nil || db != "tenant_2" {
		t.Errorf("forgotten t-5 after a move it missed: %q, %v; want tenant_2", db, err)
	}

	release()
	waitFor(t, "every tenant and pool to go", 30*time.Second, func() bool {
		tenants, pools := flags.RouterMemory(r)
		return tenants == 0 && pools == 0
	})
}
