package flags_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
)

// countingClient counts evaluations by tenant; it forwards events.
type countingClient struct {
	*openfeature.Client
	mu sync.Mutex
	n  map[string]int
}

func (c *countingClient) ObjectValueDetails(ctx context.Context, flag string, def any, ec openfeature.EvaluationContext, opts ...openfeature.Option) (openfeature.InterfaceEvaluationDetails, error) {
	c.mu.Lock()
	c.n[ec.TargetingKey()]++
	c.mu.Unlock()
	return c.Client.ObjectValueDetails(ctx, flag, def, ec, opts...)
}

func (c *countingClient) count(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[tenant]
}

// TestRouterWakesOnlyTheTenantNamed: callers held by a paused route are
// woken by events naming their tenant, not by another tenant's: a
// waiting caller of t1 does not even evaluate its route again when t2's
// route changes (with polling out of the way), and goes on when t1's
// does, one tenant or a batch.
func TestRouterWakesOnlyTheTenantNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	for _, id := range []string{"t2", "t3"} {
		if err := e.catalog.AddTenant(ctx, fleet.Tenant{ID: id, Database: "tenant_1", Instance: "pg-a"}); err != nil {
			t.Fatal(err)
		}
	}
	routes := flags.NewMemoryProvider()
	client := &countingClient{Client: flagstest.Client(t, routes), n: map[string]int{}}
	res, err := flags.NewResolver(client, e.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res, PollInterval: time.Hour,
		PoolConfig: flagstest.PoolConfig(e.byID, "application_name="+routerApp+"&pool_max_conns=4")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	paused := flags.RouteTo(e.instA, "tenant_1", 1)
	paused.Paused = true
	tenants := []string{"t1", "t2", "t3"}
	for _, id := range tenants {
		if err := routes.Publish(ctx, id, paused); err != nil {
			t.Fatal(err)
		}
	}
	done := map[string]chan error{}
	for _, id := range tenants {
		ch := make(chan error, 1)
		done[id] = ch
		go func() {
			ch <- r.Do(ctx, id, func(c *pgxpool.Conn) error { _, err := c.Exec(ctx, "SELECT 1"); return err })
		}()
	}
	waitFor(t, "every caller to wait", 5*time.Second, func() bool {
		return client.count("t1") > 0 && client.count("t2") > 0 && client.count("t3") > 0
	})
	time.Sleep(50 * time.Millisecond)
	before := client.count("t1")

	if err := routes.Publish(ctx, "t2", flags.RouteTo(e.instA, "tenant_1", 2)); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(done["t2"]); err != nil {
		t.Fatalf("t2 after its route was unpaused: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := client.count("t1"); n != before {
		t.Errorf("t1's waiting caller evaluated its route %d more times on t2's change; want none", n-before)
	}
	select {
	case err := <-done["t1"]:
		t.Fatalf("t1 went on while its route is paused: %v", err)
	default:
	}

	batch := []flags.TenantRoute{
		{Tenant: "t1", Route: flags.RouteTo(e.instA, "tenant_1", 2)},
		{Tenant: "t3", Route: flags.RouteTo(e.instA, "tenant_1", 2)},
	}
	if err := routes.PublishMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t3"} {
		if err := waitErr(done[id]); err != nil {
			t.Errorf("%s after a batch unpaused it: %v", id, err)
		}
	}
}

func waitErr(ch chan error) error {
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("still waiting after 5s")
	}
}

// gatedCatalog counts Locate calls and holds them until the gate opens.
type gatedCatalog struct {
	fleet.Catalog
	calls atomic.Int64
	mu    sync.Mutex
	gate  chan struct{}
}

func (c *gatedCatalog) Locate(ctx context.Context, id string) (fleet.Tenant, error) {
	c.calls.Add(1)
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	<-gate
	return c.Catalog.Locate(ctx, id)
}

// open lets the calls held go, and holds the next ones if hold.
func (c *gatedCatalog) open(hold bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.gate)
	if hold {
		c.gate = make(chan struct{})
	}
}

// TestResolverCoalescesCatalogLookups: concurrent Resolves of a tenant
// without a route make one catalog lookup; an unknown tenant's answer is
// reused for CatalogTTL, then asked again.
func TestResolverCoalescesCatalogLookups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc, a, _ := memCatalog(t)
	cat := &gatedCatalog{Catalog: mc, gate: make(chan struct{})}
	const ttl = 300 * time.Millisecond
	res, err := flags.NewResolver(flagstest.Client(t, flags.NewMemoryProvider()), cat, &flags.ResolverConfig{CatalogTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"t1", "ghost"} {
		const n = 10
		errs := make(chan error, n)
		before := cat.calls.Load() // before any Resolve can have asked
		for range n {
			go func() {
				got, err := res.Resolve(ctx, tenant)
				if err == nil && got != flags.RouteTo(a, "tenant_1", 0) {
					err = errors.New("wrong route " + got.String())
				}
				errs <- err
			}()
		}
		waitFor(t, "a catalog lookup", 5*time.Second, func() bool { return cat.calls.Load() > before })
		time.Sleep(50 * time.Millisecond)
		if k := cat.calls.Load() - before; k != 1 {
			t.Errorf("%s: %d catalog lookups under way for %d concurrent Resolves; want 1", tenant, k, n)
		}
		cat.open(tenant == "t1")
		for range n {
			err := <-errs
			if tenant == "ghost" && !errors.Is(err, fleet.ErrTenantNotFound) {
				t.Errorf("unknown tenant: %v; want ErrTenantNotFound", err)
			}
			if tenant == "t1" && err != nil {
				t.Error(err)
			}
		}
	}
	calls := cat.calls.Load()
	if _, err := res.Resolve(ctx, "ghost"); !errors.Is(err, fleet.ErrTenantNotFound) || cat.calls.Load() != calls {
		t.Errorf("unknown tenant again within CatalogTTL: %v after %d more lookups; want the cached answer", err, cat.calls.Load()-calls)
	}
	time.Sleep(ttl)
	if _, err := res.Resolve(ctx, "ghost"); !errors.Is(err, fleet.ErrTenantNotFound) || cat.calls.Load() != calls+1 {
		t.Errorf("unknown tenant after CatalogTTL: %v after %d more lookups; want 1", err, cat.calls.Load()-calls)
	}
}

// deafClient is an OpenFeature client whose event handlers are never
// called: every provider event is lost.
type deafClient struct{ *countingClient }

func (deafClient) AddHandler(openfeature.EventType, openfeature.EventCallback)    {}
func (deafClient) RemoveHandler(openfeature.EventType, openfeature.EventCallback) {}

// TestRouterReusesRoutesWithinMaxAge: with provider events, Acquire
// evaluates a tenant's route once and reuses it; if events are lost, a
// flip is followed once the Router's clock has run RouteMaxAge, not
// later, and not before three quarters of it. The bound is checked on
// that clock, advanced by the test (its timer's ticks add up to
// RouteMaxAge), so that a slow machine cannot make it pass or fail; a
// Router on its own timer follows too.
func TestRouterReusesRoutesWithinMaxAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPGEnv(t)
	routes := flags.NewMemoryProvider()
	client := &countingClient{Client: flagstest.Client(t, routes), n: map[string]int{}}
	const maxAge = 300 * time.Millisecond
	newRouter := func(c flags.FlagClient, maxAge time.Duration) *flags.Router {
		return e.routerThrough(t, c, flags.RouterConfig{RouteMaxAge: maxAge})
	}
	port := func(r *flags.Router) int {
		var p int
		if err := r.Do(ctx, "t1", func(c *pgxpool.Conn) error { p = serverPort(t, c); return nil }); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deaf := func(maxAge time.Duration) *flags.Router {
		return newRouter(deafClient{&countingClient{Client: client.Client, n: map[string]int{}}}, maxAge)
	}
	hearing := newRouter(client, maxAge)
	for range 50 {
		port(hearing)
	}
	if n := client.count("t1"); n > 5 {
		t.Errorf("%d evaluations for 50 Acquires within RouteMaxAge; want the route reused", n)
	}
	// Its own timer ticks every 15 minutes: only the test advances it.
	const longAge = time.Hour
	stopped, ticking := deaf(longAge), deaf(maxAge)
	if tick := flags.RouteClockTick(stopped); tick*flags.ReuseTicks > longAge {
		t.Errorf("the clock ticks every %s: %d ticks are more than RouteMaxAge (%s)", tick, flags.ReuseTicks, longAge)
	}
	for _, r := range []*flags.Router{stopped, ticking} {
		if p := port(r); p != e.a.Port() {
			t.Fatalf("port %d, want A's", p)
		}
		port(r) // the second evaluation makes the route reusable
	}
	if err := routes.Publish(ctx, "t1", flags.RouteTo(e.instB, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	waitFor(t, "the router hearing events to follow", 5*time.Second, func() bool { return port(hearing) == e.b.Port() })
	flags.AdvanceRouteClock(stopped, flags.ReuseTicks-1)
	if p := port(stopped); p != e.a.Port() {
		t.Errorf("the deaf router followed the flip before three quarters of RouteMaxAge; want the route reused")
	}
	flags.AdvanceRouteClock(stopped, 1)
	if p := port(stopped); p != e.b.Port() {
		t.Errorf("the deaf router still on A once its clock ran RouteMaxAge; want it to follow the flip")
	}
	waitFor(t, "the deaf router on its timer to follow", 5*time.Second, func() bool { return port(ticking) == e.b.Port() })
	t.Logf("the deaf router on its timer followed %s after the publish (RouteMaxAge %s)", time.Since(published).Round(time.Millisecond), maxAge)
}
