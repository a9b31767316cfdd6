package flags_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
)

// TestRoutersFollowFlip: several routers, each with its own provider and
// listening connection, all move a tenant to the new instance; the old
// pools close once their connections are back.
func TestRoutersFollowFlip(t *testing.T) {
	ctx := context.Background()
	e := newPGEnv(t)
	pub := e.provider(t)
	routers := make([]*flags.Router, 4)
	for i := range routers {
		routers[i], _ = e.router(t, flags.RouterConfig{})
	}
	var held *pgxpool.Conn // taken before the flip, released after
	for i, r := range routers {
		c, err := r.Acquire(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if p := serverPort(t, c); p != e.a.Port() {
			t.Fatalf("router %d: connected to port %d, want A's %d", i, p, e.a.Port())
		}
		if i == 0 {
			held = c
		} else {
			c.Release()
		}
	}
	if n := routers[0].InFlight("t1"); n != 1 {
		t.Errorf("InFlight = %d with one connection out, want 1", n)
	}

	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instB, "tenant_1", 5)); err != nil {
		t.Fatal(err)
	}
	for i, r := range routers {
		waitFor(t, "router to follow the flip", 5*time.Second, func() bool {
			route, err := r.Route(ctx, "t1")
			if err != nil {
				t.Fatalf("router %d: %v", i, err)
			}
			return route.Instance == "pg-b"
		})
		c, err := r.Acquire(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if p := serverPort(t, c); p != e.b.Port() {
			t.Errorf("router %d after the flip: port %d, want B's %d", i, p, e.b.Port())
		}
		if i == 0 {
			if n := r.InFlight("t1"); n != 2 {
				t.Errorf("InFlight = %d with a connection on each side, want 2", n)
			}
		}
		c.Release()
	}

	// An older epoch is refused by the publisher and changes nothing.
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 4)); !errors.Is(err, flags.ErrStaleEpoch) {
		t.Errorf("older epoch: %v, want ErrStaleEpoch", err)
	}

	// The connection taken before the flip still works and returns to
	// its pool, which then closes: no router connection is left on A.
	if _, err := held.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if n := clientConns(t, e.a, routerApp); n == 0 {
		t.Error("no router connection on A while one is held")
	}
	held.Release()
	if n := routers[0].InFlight("t1"); n != 0 {
		t.Errorf("InFlight = %d after every release", n)
	}
	waitFor(t, "the old pools to close", 5*time.Second, func() bool { return clientConns(t, e.a, routerApp) == 0 })
	if route, _ := routers[0].Route(ctx, "t1"); route.Epoch != 5 {
		t.Errorf("route %v, want epoch 5 kept", route)
	}
}

// TestPausedRouteHoldsAcquire: while paused, Acquire waits without an
// error and then goes to the new endpoint.
func TestPausedRouteHoldsAcquire(t *testing.T) {
	ctx := context.Background()
	e := newPGEnv(t)
	pub := e.provider(t)
	r, _ := e.router(t, flags.RouterConfig{})
	c, err := r.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	c.Release()

	paused := flags.RouteTo(e.instA, "tenant_1", 1)
	paused.Paused = true
	if err := pub.Publish(ctx, "t1", paused); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pause", 5*time.Second, func() bool { route, _ := r.Route(ctx, "t1"); return route.Paused })

	type result struct {
		c   *pgxpool.Conn
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		c, err := r.Acquire(ctx, "t1")
		done <- result{c, err, time.Now()}
	}()
	select {
	case res := <-done:
		t.Fatalf("Acquire returned while paused: %v", res.err)
	case <-time.After(150 * time.Millisecond):
	}
	if n := r.InFlight("t1"); n != 0 {
		t.Errorf("InFlight = %d while the only caller is held", n)
	}

	published := time.Now()
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instB, "tenant_1", 2)); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire still held after the route moved on")
	}
	if res.err != nil {
		t.Fatalf("held Acquire failed: %v", res.err)
	}
	defer res.c.Release()
	t.Logf("held Acquire released %s after the publish", res.at.Sub(published))
	if p := serverPort(t, res.c); p != e.b.Port() {
		t.Errorf("released to port %d, want B's %d", p, e.b.Port())
	}

	// Bounded by the hold limit, and by the caller's context.
	paused = flags.RouteTo(e.instB, "tenant_1", 3)
	paused.Paused = true
	if err := pub.Publish(ctx, "t1", paused); err != nil {
		t.Fatal(err)
	}
	short, _ := e.router(t, flags.RouterConfig{HoldLimit: 50 * time.Millisecond})
	waitFor(t, "the pause", 5*time.Second, func() bool { route, _ := short.Route(ctx, "t1"); return route.Paused })
	start := time.Now()
	if _, err := short.Acquire(ctx, "t1"); !errors.Is(err, flags.ErrPaused) || time.Since(start) < 50*time.Millisecond {
		t.Errorf("beyond the hold limit: %v after %s, want ErrPaused after 50ms", err, time.Since(start))
	}
	waitFor(t, "the pause", 5*time.Second, func() bool { route, _ := r.Route(ctx, "t1"); return route.Paused })
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := r.Acquire(cctx, "t1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("context ends while held: %v", err)
	}
}

// TestRouterSurvivesBadRoute: a route to an instance the catalog does not
// know, written by a publisher without a catalog (or any other writer),
// is not an outage: the Router keeps serving the tenant where its last
// valid route says (never trying the rogue endpoint, which would fail),
// and the Resolver reports the refusal.
func TestRouterSurvivesBadRoute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	pub := e.provider(t) // no catalog: publishes what it is given
	p := e.provider(t)
	res, err := flags.NewResolver(flagstest.Client(t, p), e.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	events, stop := res.Subscribe()
	defer stop()
	r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res,
		PoolConfig: flagstest.PoolConfig(e.byID, "application_name="+routerApp+"&pool_max_conns=4")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "epoch 1", 5*time.Second, func() bool { route, _ := r.Route(ctx, "t1"); return route.Epoch == 1 })

	rogue := flags.Route{Instance: "pg-rogue", Endpoint: flags.Endpoint{Endpoint: fleet.Endpoint{Host: "127.0.0.1", Port: 1}, Database: "tenant_1"}, Epoch: 2}
	if err := pub.Publish(ctx, "t1", rogue); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the provider to hold the rogue route", 5*time.Second, func() bool { got, _ := p.Lookup("t1"); return got == rogue })
	for range 3 {
		if err := r.Do(ctx, "t1", func(c *pgxpool.Conn) error {
			if port := serverPort(t, c); port != e.a.Port() {
				t.Errorf("served by port %d, want A's %d", port, e.a.Port())
			}
			return nil
		}); err != nil {
			t.Fatalf("Acquire with a rogue route published: %v", err)
		}
	}
	select {
	case ev := <-events:
		if ev.Kind != flags.EventRouteRefused || ev.Refused != rogue || ev.Serving.Epoch != 1 || !errors.Is(ev.Err, flags.ErrUnknownInstance) {
			t.Errorf("event %s refused %v serving %v (%v)", ev.Kind, ev.Refused, ev.Serving, ev.Err)
		}
	case <-time.After(5 * time.Second):
		t.Error("no event for the refused route")
	}
	if n := r.InFlight("t1"); n != 0 {
		t.Errorf("InFlight = %d", n)
	}
}

// TestRouterNoConnectionLeaks: once routers and providers are closed, no
// client connection is left on either instance.
func TestRouterNoConnectionLeaks(t *testing.T) {
	ctx := context.Background()
	e := newPGEnv(t)
	pub := e.provider(t)
	r, p := e.router(t, flags.RouterConfig{})
	for _, to := range []fleetInstance{{e.instA.ID, 0}, {e.instB.ID, 1}, {e.instA.ID, 2}} {
		if to.epoch > 0 {
			inst := e.instA
			if to.id == "pg-b" {
				inst = e.instB
			}
			if err := pub.Publish(ctx, "t1", flags.RouteTo(inst, "tenant_1", to.epoch)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the route", 5*time.Second, func() bool { route, _ := r.Route(ctx, "t1"); return route.Epoch == to.epoch })
		}
		if err := r.Do(ctx, "t1", func(c *pgxpool.Conn) error { _, err := c.Exec(ctx, "SELECT 1"); return err }); err != nil {
			t.Fatal(err)
		}
	}
	// Close waits for the connections still out.
	held, err := r.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { r.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with a connection out")
	case <-time.After(100 * time.Millisecond):
	}
	held.Release()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close still waiting after the release")
	}
	if _, err := r.Acquire(ctx, "t1"); !errors.Is(err, flags.ErrClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
	p.Close()
	pub.Close()
	waitFor(t, "every connection to go", 5*time.Second, func() bool {
		return clientConns(t, e.a, "") == 0 && clientConns(t, e.b, "") == 0
	})
}

type fleetInstance struct {
	id    string
	epoch int64
}

// TestRouterUnderLoad flips and pauses a tenant's route while callers
// keep working: no caller sees an error, every caller makes progress,
// work reaches the new instance after every flip, and nothing stays in
// flight.
func TestRouterUnderLoad(t *testing.T) {
	ctx := context.Background()
	e := newPGEnv(t)
	routes := flags.NewMemoryProvider()
	res, err := flags.NewResolver(flagstest.Client(t, routes), e.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res,
		PoolConfig: flagstest.PoolConfig(e.byID, "application_name="+routerApp+"&pool_max_conns=3")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	const workers = 6
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopWorkers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWorkers()            // before r.Close, also when the test fails early
	var done [workers]atomic.Int64 // calls completed, by worker
	var onA, onB atomic.Int64      // calls completed, by the instance that served them
	for w := range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var port int
				err := r.Do(ctx, "t1", func(c *pgxpool.Conn) error {
					return c.QueryRow(ctx, "SELECT inet_server_port() FROM pg_sleep(0.001)").Scan(&port)
				})
				if err != nil {
					t.Errorf("caller %d: %v", w, err)
					return
				}
				done[w].Add(1)
				if port == e.a.Port() {
					onA.Add(1)
				} else {
					onB.Add(1)
				}
			}
		})
	}
	epoch := int64(0)
	for i := range 10 {
		to, served := e.instA, &onA
		if i%2 == 0 {
			to, served = e.instB, &onB
		}
		epoch++
		pause := flags.RouteTo(to, "tenant_1", epoch)
		pause.Paused = true
		if err := routes.Publish(ctx, "t1", pause); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		epoch++
		before := served.Load()
		if err := routes.Publish(ctx, "t1", flags.RouteTo(to, "tenant_1", epoch)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("work on %s after flip %d", to.ID, i+1), 10*time.Second,
			func() bool { return served.Load() > before })
	}
	// Every caller got through the flips too, not just some of them.
	for w := range workers {
		mark := done[w].Load()
		waitFor(t, fmt.Sprintf("caller %d to complete calls after the last flip", w), 10*time.Second,
			func() bool { return done[w].Load() > mark })
	}
	stopWorkers()
	if n := r.InFlight("t1"); n != 0 {
		t.Errorf("InFlight = %d after every caller stopped", n)
	}
	t.Logf("%d calls on A and %d on B through 10 flips", onA.Load(), onB.Load())
	// The last route is on A: B's pool closes.
	waitFor(t, "B's pool to close", 5*time.Second, func() bool { return clientConns(t, e.b, routerApp) == 0 })
}

// TestRouterDefaultSSLMode: a connection string that leaves sslmode at
// its default (prefer) works with a server without TLS, as it does with
// plain pgx: the Router keeps pgx's plaintext fallback, pointed at the
// route's endpoint, not at the string's host (here a port nobody
// listens on).
func TestRouterDefaultSSLMode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	res, err := flags.NewResolver(flagstest.Client(t, flags.NewMemoryProvider()), e.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res,
		PoolConfig: flags.PoolConfigFrom("postgres://postgres@127.0.0.1:1,127.0.0.2:2/elsewhere?application_name=" + routerApp)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := r.Acquire(ctx, "t1")
	if err != nil {
		t.Fatalf("Acquire with sslmode left at prefer: %v", err)
	}
	defer c.Release()
	var db string
	if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if p := serverPort(t, c); p != e.a.Port() || db != "tenant_1" {
		t.Errorf("connected to port %d database %s, want A's %d and tenant_1", p, db, e.a.Port())
	}
}
