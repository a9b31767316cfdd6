package flags_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
)

// BenchmarkPropagation measures, per Publish with the PostgreSQL provider,
// the time until every router follows the new route: "10x1" is 10
// routers each with its own provider, listening connection and
// OpenFeature API (10 processes), "10x10" is 100 routers, 10 on each of
// 10 providers (10 processes of 10 routers). Reported: p50 and p99 of
// that time over the iterations ("all-p50-ms", "all-p99-ms"), and of
// each single router's time ("one-p50-ms", "one-p99-ms").
func BenchmarkPropagation(b *testing.B) {
	for _, shape := range []struct{ providers, routers int }{{10, 1}, {10, 10}} {
		b.Run(fmt.Sprintf("%dx%d", shape.providers, shape.routers), func(b *testing.B) {
			benchPropagation(b, shape.providers, shape.routers)
		})
	}
}

func benchPropagation(b *testing.B, providers, perProvider int) {
	n := providers * perProvider
	ctx := context.Background()
	e := newPGEnv(b)
	pub := e.provider(b)
	routers := make([]*flags.Router, 0, n)
	wake := make([]chan struct{}, 0, n)
	for range providers {
		p := e.provider(b)
		client := flagstest.Client(b, p)
		for range perProvider {
			res, err := flags.NewResolver(client, e.catalog, nil)
			if err != nil {
				b.Fatal(err)
			}
			r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res, PoolConfig: flagstest.PoolConfig(e.byID, "")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(r.Close)
			if _, err := r.Route(ctx, "t1"); err != nil { // the router serves t1: its provider follows it
				b.Fatal(err)
			}
			routers = append(routers, r)
			ch := make(chan struct{}, 1)
			wake = append(wake, ch)
			cb := openfeature.EventCallback(ptr(func(openfeature.EventDetails) {
				select {
				case ch <- struct{}{}:
				default:
				}
			}))
			client.AddHandler(openfeature.ProviderConfigChange, cb)
			b.Cleanup(func() { client.RemoveHandler(openfeature.ProviderConfigChange, cb) })
		}
	}

	var all, one []time.Duration
	epoch := int64(0)
	b.ResetTimer()
	for range b.N {
		epoch++
		to := e.instA
		if epoch%2 == 1 {
			to = e.instB
		}
		for _, ch := range wake {
			drainOne(ch)
		}
		start := time.Now()
		if err := pub.Publish(ctx, "t1", flags.RouteTo(to, "tenant_1", epoch)); err != nil {
			b.Fatal(err)
		}
		seen := make([]time.Duration, n)
		var wg sync.WaitGroup
		for i, r := range routers {
			wg.Go(func() {
				// Woken by the provider's event; the tick only bounds a
				// lost wake-up.
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					if route, err := r.Route(ctx, "t1"); err == nil && route.Epoch >= epoch {
						seen[i] = time.Since(start)
						return
					}
					select {
					case <-wake[i]:
					case <-tick.C:
					}
				}
			})
		}
		wg.Wait()
		one = append(one, seen...)
		all = append(all, slices.Max(seen))
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(all, 50)), "all-p50-ms")
	b.ReportMetric(ms(percentile(all, 99)), "all-p99-ms")
	b.ReportMetric(ms(percentile(one, 50)), "one-p50-ms")
	b.ReportMetric(ms(percentile(one, 99)), "one-p99-ms")
}

// BenchmarkAcquireOverhead compares Router.Acquire+Release with a bare
// pgxpool Acquire+Release on the same database, in the same run, with the
// same pool settings. Reported: ns per acquire of each, and their ratio.
//
// Sub-benchmarks: "catalog" for a tenant without a published route (the
// flag is not found and the catalog's route, cached, is used), and
// "published" for a tenant with one.
func BenchmarkAcquireOverhead(b *testing.B) {
	ctx := context.Background()
	e := newPGEnv(b)
	r, _ := e.router(b, flags.RouterConfig{})
	b.Run("catalog", func(b *testing.B) { benchAcquire(b, e, r) })
	pub := e.provider(b)
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 1)); err != nil {
		b.Fatal(err)
	}
	for {
		if route, err := r.Route(ctx, "t1"); err == nil && route.Epoch == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.Run("published", func(b *testing.B) { benchAcquire(b, e, r) })
}

func benchAcquire(b *testing.B, e *pgEnv, r *flags.Router) {
	const k = 1000 // acquires of each kind per iteration
	ctx := context.Background()
	cfg, err := flagstest.PoolConfig(e.byID, "application_name="+routerApp+"&pool_max_conns=4")(ctx, flags.RouteTo(e.instA, "tenant_1", 0))
	if err != nil {
		b.Fatal(err)
	}
	bare, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(bare.Close)
	acquireBare := func() error {
		c, err := bare.Acquire(ctx)
		if err == nil {
			c.Release()
		}
		return err
	}
	acquireRouted := func() error {
		c, err := r.Acquire(ctx, "t1")
		if err == nil {
			c.Release()
		}
		return err
	}
	for _, f := range []func() error{acquireBare, acquireRouted} { // warm up: connect
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	var bareT, routedT time.Duration
	b.ResetTimer()
	for range b.N {
		for _, m := range []struct {
			f func() error
			d *time.Duration
		}{{acquireBare, &bareT}, {acquireRouted, &routedT}} {
			start := time.Now()
			for range k {
				if err := m.f(); err != nil {
					b.Fatal(err)
				}
			}
			*m.d += time.Since(start)
		}
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*k) }
	b.ReportMetric(per(bareT), "bare-ns/acquire")
	b.ReportMetric(per(routedT), "router-ns/acquire")
	b.ReportMetric(per(routedT)/per(bareT), "router/bare")
}

func drainOne(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}
