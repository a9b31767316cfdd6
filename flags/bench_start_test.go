package flags_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
)

// BenchmarkStartWithMillionRoutes measures an application server's
// start with 1,000,000 routes in the table: a new PostgresProvider, set
// on an OpenFeature API and ready, a Resolver and a Router, and a first
// Acquire of one tenant. Reported: that time ("ready-ms") and the heap it
// holds afterwards ("heap-MB", HeapInuse after GC), the heap once 1,000
// tenants are resolved ("heap-1k-tenants-MB"), and, as the baseline in
// the same run, what a user would write without on-demand loading (and
// what this provider did before): SELECT every route into a map, decoded
// ("baseline-full-load-ms", "baseline-heap-MB").
func BenchmarkStartWithMillionRoutes(b *testing.B) {
	const routes = 1_000_000
	ctx := context.Background()
	e := newOneEnv(b)
	e.provider(b) // creates the table
	loaded := time.Now()
	admin(b, e.a, "SELECT 1") // the instance answers
	conn, err := e.a.Connect(ctx, "control")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO daisychain.routes (tenant, route, epoch)
		SELECT 'tenant-' || i, jsonb_build_object('instance', 'pg-a', 'paused', false, 'epoch', 1,
			'endpoint', jsonb_build_object('host', $1::text, 'port', $2::int, 'database', 'tenant_1')), 1
		FROM generate_series(1, $3::int) AS i`, e.instA.Endpoint.Host, e.instA.Endpoint.Port, routes); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE daisychain.routes"); err != nil {
		b.Fatal(err)
	}
	conn.Close(ctx)
	b.Logf("%d routes loaded in %s", routes, time.Since(loaded).Round(time.Millisecond))

	var ready, full time.Duration
	var heap, heapTouched, fullHeap float64
	b.ResetTimer()
	for range b.N {
		base := heapInuse()
		start := time.Now()
		p, err := flags.NewPostgresProvider(ctx, e.control, nil)
		if err != nil {
			b.Fatal(err)
		}
		api := isolated.NewAPI()
		if err := api.SetProviderAndWait(ctx, p); err != nil {
			b.Fatal(err)
		}
		res, err := flags.NewResolver(api.NewClient(), e.catalog, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res, PoolConfig: flagstest.PoolConfig(e.byID, "pool_max_conns=2")})
		if err != nil {
			b.Fatal(err)
		}
		c, err := r.Acquire(ctx, "tenant-42")
		if err != nil {
			b.Fatal(err)
		}
		c.Release()
		ready += time.Since(start)
		heap += mb(heapInuse() - base)
		for i := range 1000 {
			if _, err := r.Route(ctx, fmt.Sprintf("tenant-%d", 1+i*997%routes)); err != nil {
				b.Fatal(err)
			}
		}
		heapTouched += mb(heapInuse() - base)
		r.Close()
		if err := api.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		p.Close()

		base = heapInuse()
		start = time.Now()
		all := loadAllRoutes(b, e)
		full += time.Since(start)
		fullHeap += mb(heapInuse() - base)
		if len(all) != routes {
			b.Fatalf("baseline loaded %d routes", len(all))
		}
		runtime.KeepAlive(all)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(ms(ready)/n, "ready-ms")
	b.ReportMetric(heap/n, "heap-MB")
	b.ReportMetric(heapTouched/n, "heap-1k-tenants-MB")
	b.ReportMetric(ms(full)/n, "baseline-full-load-ms")
	b.ReportMetric(fullHeap/n, "baseline-heap-MB")
	b.Logf("ready in %.1f ms holding %.2f MB (%.2f MB with 1,000 tenants resolved); full load %.0f ms holding %.0f MB",
		ms(ready)/n, heap/n, heapTouched/n, ms(full)/n, fullHeap/n)
}

// loadAllRoutes is the baseline: every route of the table into a map,
// decoded, as a server that loads the table at start does.
func loadAllRoutes(tb testing.TB, e *pgEnv) map[string]flags.Route {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.control)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT tenant, route FROM daisychain.routes")
	if err != nil {
		tb.Fatal(err)
	}
	all := map[string]flags.Route{}
	var tenant string
	var raw []byte
	if _, err := pgx.ForEachRow(rows, []any{&tenant, &raw}, func() error {
		r, err := flags.DecodeRoute(raw)
		if err != nil {
			return err
		}
		all[tenant] = r
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return all
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mb(b uint64) float64 { return float64(int64(b)) / (1 << 20) }
