package flags_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
// SELECT 1, for 10 s per iteration. Reported: calls per second
// ("calls/s"), the most server connections seen on any instance in
// pg_stat_activity, sampled every 50 ms ("max-conns"; the budget is 50),
// callers' errors ("errors"), and, once the load is over, the cost of
// Router.Acquire+Release of a warm tenant against a bare pgxpool
// Acquire+Release of the same database in the same run
// ("router-ns/acquire", "bare-ns/acquire", "router/bare").
func BenchmarkRouterFleet(b *testing.B) {
	const instances, dbs, tenants, budget, callers = 3, 300, 10_000, 50, 16
	ctx := context.Background()
	catalog := fleet.NewMemoryCatalog()
	byID := map[string]*localpg.Instance{}
	insts := make([]*localpg.Instance, instances)
	created := time.Now()
	var wg sync.WaitGroup
	for i := range insts {
		insts[i] = localpgtest.Start(b, &localpg.Config{Name: fmt.Sprintf("fleet-%d", i)})
		id := fmt.Sprintf("pg-%d", i)
		flagstest.Register(b, catalog, id, insts[i])
		byID[id] = insts[i]
		wg.Go(func() { createDatabases(b, insts[i], dbs) })
	}
	wg.Wait()
	for t := range tenants {
		inst, db := t%instances, (t/instances)%dbs
		if err := catalog.AddTenant(ctx, fleet.Tenant{ID: fmt.Sprintf("u%05d", t), Database: fmt.Sprintf("d_%03d", db),
			Instance: fmt.Sprintf("pg-%d", inst)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d instances × %d databases and %d tenants ready in %s", instances, dbs, tenants, time.Since(created).Round(time.Second))

	const app = "flags-bench-fleet"
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
	admins := make([]*pgx.Conn, instances)
	for i, inst := range insts {
		if admins[i], err = inst.Connect(ctx, "postgres"); err != nil {
			b.Fatal(err)
		}
		defer admins[i].Close(ctx)
	}

	var calls, errs atomic.Int64
	most := 0
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		stop := make(chan struct{})
		start := time.Now()
		var load sync.WaitGroup
		for range callers {
			load.Go(func() {
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
					err := r.Do(ctx, fmt.Sprintf("u%05d", t), func(c *pgxpool.Conn) error {
						_, err := c.Exec(ctx, "SELECT 1")
						return err
					})
					if err != nil {
						if errs.Add(1) == 1 {
							b.Logf("first error: %v", err)
						}
						continue
					}
					calls.Add(1)
				}
			})
		}
		for time.Since(start) < 10*time.Second {
			for _, a := range admins {
				var n int
				if err := a.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
					b.Fatal(err)
				}
				most = max(most, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		close(stop)
		load.Wait()
		elapsed += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(calls.Load())/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(most), "max-conns")
	b.ReportMetric(float64(errs.Load()), "errors")

	// Acquire overhead of a warm tenant, against a bare pool of its
	// database with the same settings.
	const k = 20_000
	route, err := r.Route(ctx, "u00001")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := flagstest.PoolConfig(byID, "application_name="+app+"&pool_max_conns=4")(ctx, route)
	if err != nil {
		b.Fatal(err)
	}
	bare, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	timeIt := func(acquire func() (*pgxpool.Conn, error)) float64 {
		for range 100 { // warm up
			c, err := acquire()
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
		start := time.Now()
		for range k {
			c, err := acquire()
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
		return float64(time.Since(start).Nanoseconds()) / k
	}
	bareNs := timeIt(func() (*pgxpool.Conn, error) { return bare.Acquire(ctx) })
	routerNs := timeIt(func() (*pgxpool.Conn, error) { return r.Acquire(ctx, "u00001") })
	b.ReportMetric(bareNs, "bare-ns/acquire")
	b.ReportMetric(routerNs, "router-ns/acquire")
	b.ReportMetric(routerNs/bareNs, "router/bare")
	b.Logf("%.0f calls/s over %d tenants, at most %d connections on an instance (budget %d), %d errors; acquire %.0f ns vs bare %.0f ns",
		float64(calls.Load())/elapsed.Seconds(), tenants, most, budget, errs.Load(), routerNs, bareNs)
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
