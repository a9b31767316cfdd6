package flags_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// BenchmarkRouterFleet serves 10,000 tenants through one Router across 3
// instances of 300 databases each (about 11 tenants per database: a
// route names a database, and 900 databases is what this machine holds
// comfortably), with MaxConnsPerInstance 50, under a mixed load of 16
// callers: 80% of calls to 200 hot tenants, 20% to any tenant, each a
// SELECT 1. A call to a database without an idle connection must connect,
// within the budget: that, not the Router, is what a call of this mix
// mostly costs, so the baseline is the same load, in the same run, through
// bare pgxpools, one per database, held within the same budget the same
// way (a dial takes a slot, a closed socket gives it back, a connection
// released while a dial waits for more slots than are free is dropped,
// and an idle one of another pool closed when a dial starts waiting and
// then with backoff) but without routes: the two
// alternate, 1 s each, for 10 s per iteration. Reported: calls per second
// through the Router ("calls/s") and bare ("bare-calls/s"), and their
// ratio ("bare/router-calls"); the most server connections seen on any
// instance in pg_stat_activity, sampled every 50 ms ("max-conns"; the
// budget is 50); callers' errors ("errors"); and, once the load is over,
// the cost of Router.Acquire+Release of a warm tenant against a bare
// pgxpool Acquire+Release of the same database, alternating in rounds,
// the median round of each ("router-ns/acquire", "bare-ns/acquire",
// "router/bare").
func BenchmarkRouterFleet(b *testing.B) {
	const instances, dbs, tenants, budget, callers = 3, 300, 10_000, 50, 16
	ctx := context.Background()
	catalog := fleet.NewMemoryCatalog()
	byID := map[string]*localpg.Instance{}
	insts := make([]*localpg.Instance, instances)
	fis := make([]fleet.Instance, instances)
	created := time.Now()
	var wg sync.WaitGroup
	for i := range insts {
		insts[i] = localpgtest.Start(b, &localpg.Config{Name: fmt.Sprintf("fleet-%d", i)})
		id := fmt.Sprintf("pg-%d", i)
		fis[i] = flagstest.Register(b, catalog, id, insts[i])
		byID[id] = insts[i]
		wg.Go(func() { createDatabases(b, insts[i], dbs) })
	}
	wg.Wait()
	routes := make([]flags.Route, tenants) // where the catalog has each tenant: the baseline's routing table
	for t := range tenants {
		inst, db := t%instances, (t/instances)%dbs
		if err := catalog.AddTenant(ctx, fleet.Tenant{ID: tenantName(t), Database: fmt.Sprintf("d_%03d", db),
			Instance: fmt.Sprintf("pg-%d", inst)}); err != nil {
			b.Fatal(err)
		}
		routes[t] = flags.RouteTo(fis[inst], fmt.Sprintf("d_%03d", db), 0)
	}
	b.Logf("%d instances × %d databases and %d tenants ready in %s", instances, dbs, tenants, time.Since(created).Round(time.Second))

	const app, bareApp = "flags-bench-fleet", "flags-bench-bare"
	res, err := flags.NewResolver(flagstest.Client(b, flags.NewMemoryProvider()), catalog, nil)
	if err != nil {
		b.Fatal(err)
	}
	r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res, MaxConnsPerInstance: budget,
		PoolConfig: flagstest.PoolConfig(byID, "application_name="+app+"&pool_max_conns=4")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	bare := newBarePools(budget, flagstest.PoolConfig(byID, "application_name="+bareApp+"&pool_max_conns=4"))
	b.Cleanup(bare.close)
	admins := make([]*pgx.Conn, instances)
	for i, inst := range insts {
		if admins[i], err = inst.Connect(ctx, "postgres"); err != nil {
			b.Fatal(err)
		}
		defer admins[i].Close(ctx)
	}

	routerCall := func(t int) error {
		return r.Do(ctx, tenantName(t), func(c *pgxpool.Conn) error {
			_, err := c.Exec(ctx, "SELECT 1")
			return err
		})
	}
	bareCall := func(t int) error {
		c, err := bare.acquire(ctx, routes[t])
		if err != nil {
			return err
		}
		defer c.Release()
		_, err = c.Exec(ctx, "SELECT 1")
		return err
	}
	var errs atomic.Int64
	// load runs the mix through call for d, and returns the calls made.
	load := func(call func(int) error, d time.Duration) int64 {
		var calls atomic.Int64
		stop := make(chan struct{})
		var running sync.WaitGroup
		for range callers {
			running.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					t := rand.IntN(tenants)
					if rand.IntN(10) < 8 {
						t = rand.IntN(200)
					}
					if err := call(t); err != nil {
						if errs.Add(1) == 1 {
							b.Logf("first error: %v", err)
						}
						continue
					}
					calls.Add(1)
				}
			})
		}
		time.Sleep(d)
		close(stop)
		running.Wait()
		return calls.Load()
	}
	most := map[string]int{}
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, a := range admins {
				rows, err := a.Query(ctx, `SELECT application_name, count(*) FROM pg_stat_activity
					WHERE application_name IN ($1, $2) GROUP BY 1`, app, bareApp)
				if err != nil {
					b.Error(err)
					return
				}
				for rows.Next() {
					var name string
					var n int
					if err := rows.Scan(&name, &n); err != nil {
						b.Error(err)
						return
					}
					most[name] = max(most[name], n)
				}
				rows.Close()
			}
		}
	}()

	var routerCalls, bareCalls int64
	var routerTime, bareTime time.Duration
	b.ResetTimer()
	for range b.N {
		for range 5 {
			start := time.Now()
			routerCalls += load(routerCall, time.Second)
			routerTime += time.Since(start)
			start = time.Now()
			bareCalls += load(bareCall, time.Second)
			bareTime += time.Since(start)
		}
	}
	b.StopTimer()
	close(stopSampling)
	<-sampled
	routerRate, bareRate := float64(routerCalls)/routerTime.Seconds(), float64(bareCalls)/bareTime.Seconds()
	b.ReportMetric(routerRate, "calls/s")
	b.ReportMetric(bareRate, "bare-calls/s")
	b.ReportMetric(bareRate/routerRate, "bare/router-calls")
	b.ReportMetric(float64(most[app]), "max-conns")
	b.ReportMetric(float64(most[bareApp]), "bare-max-conns")
	b.ReportMetric(float64(errs.Load()), "errors")

	// Acquire overhead of a warm tenant, against a bare pool of its
	// database with the same settings, alternating in rounds so that
	// both see the same machine.
	// Short rounds, and the median of each: on a machine shared with
	// other work, a round preempted is an outlier, not a bias.
	const rounds, k = 100, 200
	route, err := r.Route(ctx, "u00001")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := flagstest.PoolConfig(byID, "application_name="+app+"&pool_max_conns=4")(ctx, route)
	if err != nil {
		b.Fatal(err)
	}
	warm, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer warm.Close()
	timeIt := func(acquire func() (*pgxpool.Conn, error), n int) time.Duration {
		start := time.Now()
		for range n {
			c, err := acquire()
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
		return time.Since(start)
	}
	bareAcquire := func() (*pgxpool.Conn, error) { return warm.Acquire(ctx) }
	routerAcquire := func() (*pgxpool.Conn, error) { return r.Acquire(ctx, "u00001") }
	timeIt(bareAcquire, 100) // warm up
	timeIt(routerAcquire, 100)
	bareT, routerT := make([]time.Duration, rounds), make([]time.Duration, rounds)
	for i := range rounds {
		bareT[i] = timeIt(bareAcquire, k)
		routerT[i] = timeIt(routerAcquire, k)
	}
	slices.Sort(bareT)
	slices.Sort(routerT)
	bareNs := float64(bareT[rounds/2].Nanoseconds()) / k
	routerNs := float64(routerT[rounds/2].Nanoseconds()) / k
	b.ReportMetric(bareNs, "bare-ns/acquire")
	b.ReportMetric(routerNs, "router-ns/acquire")
	b.ReportMetric(routerNs/bareNs, "router/bare")
	b.Logf("mixed load over %d tenants: %.0f calls/s through the Router, %.0f bare (%.2f×); at most %d connections on an instance (budget %d; bare %d), %d errors; warm acquire %.0f ns vs bare %.0f ns (%.2f×)",
		tenants, routerRate, bareRate, bareRate/routerRate, most[app], budget, most[bareApp], errs.Load(), routerNs, bareNs, routerNs/bareNs)
}

func tenantName(t int) string { return fmt.Sprintf("u%05d", t) }

// barePools is the baseline of BenchmarkRouterFleet: a pgxpool per
// database, made when first needed, each connection of an instance's
// pools dialing within a budget of slots, as a Router's do, and a
// connection released while a dial of its instance waits dropped, or an
// idle one closed, so that the waiting dial gets its slot.
type barePools struct {
	budget int
	config func(context.Context, flags.Route) (*pgxpool.Config, error)

	mu        sync.Mutex
	pools     map[flags.Endpoint]*pgxpool.Pool
	instances map[flags.Endpoint]string
	budgets   map[string]*bareBudget
}

type bareBudget struct {
	slots   chan struct{}
	waiting atomic.Int32
}

// short reports whether dials wait for more slots than are free (a
// slotConn gives its slot back as it closes).
func (bb *bareBudget) short() bool { return int(bb.waiting.Load()) > cap(bb.slots)-len(bb.slots) }

func newBarePools(budget int, config func(context.Context, flags.Route) (*pgxpool.Config, error)) *barePools {
	return &barePools{budget: budget, config: config, pools: map[flags.Endpoint]*pgxpool.Pool{},
		instances: map[flags.Endpoint]string{}, budgets: map[string]*bareBudget{}}
}

func (bp *barePools) acquire(ctx context.Context, route flags.Route) (*pgxpool.Conn, error) {
	bp.mu.Lock()
	p := bp.pools[route.Endpoint]
	if p == nil {
		bb := bp.budgets[route.Instance]
		if bb == nil {
			bb = &bareBudget{slots: make(chan struct{}, bp.budget)}
			bp.budgets[route.Instance] = bb
		}
		cfg, err := bp.config(ctx, route)
		if err != nil {
			bp.mu.Unlock()
			return nil, err
		}
		dial := cfg.ConnConfig.DialFunc
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if err := bp.take(ctx, route.Instance, bb); err != nil {
				return nil, err
			}
			c, err := dial(ctx, network, addr)
			if err != nil {
				<-bb.slots
				return nil, err
			}
			return &slotConn{Conn: c, slots: bb.slots}, nil
		}
		cfg.AfterRelease = func(*pgx.Conn) bool { return !bb.short() }
		if p, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			bp.mu.Unlock()
			return nil, err
		}
		bp.pools[route.Endpoint] = p
		bp.instances[route.Endpoint] = route.Instance
	}
	bp.mu.Unlock()
	return p.Acquire(ctx)
}

// take waits for a slot of the instance's budget, closing an idle
// connection of another of its pools when it starts waiting and then
// with backoff from 10 ms to 1 s, while short, as a Router does:
// connections also go idle without being released.
func (bp *barePools) take(ctx context.Context, instance string, bb *bareBudget) error {
	bb.waiting.Add(1)
	defer bb.waiting.Add(-1)
	wait := backoff.NewExponentialBackOff(backoff.WithInitialInterval(10*time.Millisecond),
		backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(0))
	look := time.NewTimer(0)
	defer look.Stop()
	for {
		select {
		case bb.slots <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-look.C:
		}
		select {
		case bb.slots <- struct{}{}:
			return nil
		default:
		}
		look.Reset(wait.NextBackOff())
		if !bb.short() {
			continue
		}
		bp.mu.Lock()
		var pools []*pgxpool.Pool
		for ep, p := range bp.pools {
			if bp.instances[ep] == instance {
				pools = append(pools, p)
			}
		}
		bp.mu.Unlock()
		for _, p := range pools {
			if idle := p.AcquireAllIdle(ctx); len(idle) > 0 {
				_ = idle[0].Conn().Close(ctx)
				for _, c := range idle {
					c.Release() // kept: the closed one's slot is free
				}
				break
			}
		}
	}
}

func (bp *barePools) close() {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	for _, p := range bp.pools {
		p.Close()
	}
}

// slotConn gives its budget slot back when it closes.
type slotConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *slotConn) Close() error {
	c.once.Do(func() { <-c.slots })
	return c.Conn.Close()
}

// createDatabases creates d_000 ... on inst from an empty template.
func createDatabases(tb testing.TB, inst *localpg.Instance, n int) {
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		tb.Error(err)
		return
	}
	defer conn.Close(ctx)
	for i := range n {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE d_%03d TEMPLATE template0", i)); err != nil {
			tb.Error(err)
			return
		}
	}
}
