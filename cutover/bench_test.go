package cutover_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// BenchmarkMoveWindow moves a tenant back and forth under 16 writers
// through the Router (each pausing 5 ms between writes, up to 3,200 writes
// a second, the table emptied before each move so that the copies stay
// small), and reports p50 and p99 of the gap the application
// saw (the longest time between two acknowledged writes around each
// move) and of the window the library measured, with application errors
// and missing writes. The baseline, in the same run and alternating with
// the library's moves, is what a team does without this library: a
// second tenant, written by 16 writers that hold a connection string,
// is streamed by the same logical replication; its source is closed
// (ALLOW_CONNECTIONS false) and its sessions terminated; once the target
// has the source's last position and sequences, the application's
// connection string changes, and the writers, which retry each failed
// request with exponential backoff (backoff/v4, 10 ms doubling, each
// request given up after 5 s), reconnect to it. A request that failed
// after its retries is an application error. Goal: p50 at most 50 ms,
// p99 at most 150 ms on 2 cores, 0 errors, 0 missing writes.
//
//	go test ./cutover -run '^$' -bench MoveWindow -benchtime 1x -timeout 1h
//
// DAISYCHAIN_BENCH_MOVES sets the moves per mode (default 20).
func BenchmarkMoveWindow(b *testing.B) {
	moves := 20
	if v, err := strconv.Atoi(os.Getenv("DAISYCHAIN_BENCH_MOVES")); err == nil && v > 0 {
		moves = v
	}
	ctx := context.Background()
	f, mover := startBenchFleet(b, "acme", "beta")
	const writers, writePause = 16, 5 * time.Millisecond
	for b.Loop() {
		var lib, libGap, base, baseGap []time.Duration
		steps := map[cutover.Step][]time.Duration{}
		var libErrs, libMissing, baseErrs, baseMissing int64
		where := map[string]string{"acme": "pg-a", "beta": "pg-a"}
		other := map[string]string{"pg-a": "pg-b", "pg-b": "pg-a"}
		for i := range moves {
			// The library: a Move under writes through the Router.
			emptyWorkload(b, f, where["acme"], "acme")
			w := cutovertest.StartPacedWorkload(f.Router, "acme", writers, writePause)
			settle(b, func() error { return w.WaitForAcks(ctx, 50) })
			w.ResetGap()
			id := "bench-" + strconv.Itoa(i)
			rep, err := mover.Move(ctx, cutover.Request{ID: id, Tenant: "acme", Target: other[where["acme"]]})
			if err != nil {
				b.Fatalf("move %d: %v\n%s", i, err, rep)
			}
			where["acme"] = rep.Target
			settle(b, func() error { return w.WaitForAcks(ctx, 50) })
			st := w.Stop()
			libGap, lib = append(libGap, st.MaxGap), append(lib, rep.Window)
			for _, s := range rep.Steps {
				steps[s.Step] = append(steps[s.Step], s.Duration)
			}
			libErrs += st.Errors
			if st.Errors > 0 {
				b.Logf("move %d: %d application errors, first: %v\n%s", i, st.Errors, st.FirstError, rep)
			}
			libMissing += missingOnInstance(b, f, where["acme"], "acme", w.Missing)
			if err := mover.Retire(ctx, id); err != nil {
				b.Fatal(err)
			}

			// The baseline: the same move by hand, the application
			// following a connection string.
			from, to := where["beta"], other[where["beta"]]
			emptyWorkload(b, f, from, "beta")
			gap, window, errs, missing := moveByHand(b, f, "beta", from, to, writers, writePause, i)
			where["beta"] = to
			baseGap, base = append(baseGap, gap), append(base, window)
			baseErrs += errs
			baseMissing += missing
		}
		for _, s := range [][]time.Duration{lib, libGap, base, baseGap} {
			slices.Sort(s)
		}
		b.ReportMetric(ms(pct(libGap, 50)), "app-gap-p50-ms")
		b.ReportMetric(ms(pct(libGap, 99)), "app-gap-p99-ms")
		b.ReportMetric(ms(pct(lib, 50)), "window-p50-ms")
		b.ReportMetric(ms(pct(lib, 99)), "window-p99-ms")
		b.ReportMetric(float64(libErrs), "app-errors")
		b.ReportMetric(float64(libMissing), "missing")
		b.ReportMetric(ms(pct(baseGap, 50)), "baseline-app-gap-p50-ms")
		b.ReportMetric(ms(pct(baseGap, 99)), "baseline-app-gap-p99-ms")
		b.ReportMetric(float64(baseErrs), "baseline-app-errors")
		b.Logf("library:  %d moves under %d writers: app gap p50 %s p99 %s, library window p50 %s p99 %s, %d app errors, %d missing",
			moves, writers, pct(libGap, 50).Round(time.Millisecond), pct(libGap, 99).Round(time.Millisecond),
			pct(lib, 50).Round(time.Millisecond), pct(lib, 99).Round(time.Millisecond), libErrs, libMissing)
		var inWindow []string
		for _, s := range []cutover.Step{cutover.StepPause, cutover.StepQuiesce, cutover.StepFence, cutover.StepBarrier,
			cutover.StepWaitTarget, cutover.StepReverseStart, cutover.StepSyncSequences, cutover.StepSnapshot, cutover.StepSwitch} {
			slices.Sort(steps[s])
			inWindow = append(inWindow, fmt.Sprintf("%s %s", s, pct(steps[s], 50).Round(100*time.Microsecond)))
		}
		b.Logf("library window steps, p50: %s", strings.Join(inWindow, ", "))
		b.Logf("baseline: %d moves by hand (close + terminate, catch up, new connection string, backoff): app gap p50 %s p99 %s, closed-to-switched p50 %s p99 %s, %d app errors, %d missing",
			moves, pct(baseGap, 50).Round(time.Millisecond), pct(baseGap, 99).Round(time.Millisecond),
			pct(base, 50).Round(time.Millisecond), pct(base, 99).Round(time.Millisecond), baseErrs, baseMissing)
	}
}

// emptyWorkload empties the workload table of db on instance: each move
// checks only its own writes.
// startBenchFleet starts a fleet with the tenants on pg-a, and a Mover
// with a window budget of 30 s; the fleet stops when b ends.
func startBenchFleet(b *testing.B, tenants ...string) (*cutovertest.Fleet, *cutover.Mover) {
	b.Helper()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	for _, id := range tenants {
		if err := f.AddTenant(ctx, id, id, "pg-a", shopSchema); err != nil {
			b.Fatal(err)
		}
	}
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	return f, mover
}

func emptyWorkload(b *testing.B, f *cutovertest.Fleet, instance, db string) {
	b.Helper()
	onInstance(b, f, instance, db, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "TRUNCATE daisychain_workload")
		return err
	})
}

// onInstance runs fn on a connection to db on the fleet's instance,
// failing the benchmark if it fails.
func onInstance(b *testing.B, f *cutovertest.Fleet, instance, db string, fn func(context.Context, *pgx.Conn) error) {
	b.Helper()
	ctx := context.Background()
	conn, err := f.Instances[instance].Connect(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := fn(ctx, conn); err != nil {
		b.Fatal(err)
	}
}

// settle runs wait (writes seen), failing the benchmark if it fails.
func settle(b *testing.B, wait func() error) {
	b.Helper()
	if err := wait(); err != nil {
		b.Fatal(err)
	}
}

func missingOnInstance(b *testing.B, f *cutovertest.Fleet, instance, db string, missing func(context.Context, *pgx.Conn) (int64, error)) int64 {
	b.Helper()
	var n int64
	onInstance(b, f, instance, db, func(ctx context.Context, conn *pgx.Conn) (err error) {
		n, err = missing(ctx, conn)
		return err
	})
	return n
}

// moveByHand moves tenant db from one instance to the other the way a
// team without this library does, under writers that follow a connection
// string, and returns the application's longest gap, the time from
// closing the source to the new connection string, the failed requests
// and the acknowledged writes missing on the target.
func moveByHand(b *testing.B, f *cutovertest.Fleet, db, from, to string, writers int, pause time.Duration, i int) (gap, window time.Duration, errs, missing int64) {
	b.Helper()
	ctx := context.Background()
	src, tgt := f.Instances[from], f.Instances[to]
	app := newConnStringApp(connStringOf(src, from, db))
	defer app.close()
	w := cutovertest.StartPacedWorkload(app, db, writers, pause)
	defer w.Stop()
	stream, err := (&logical.Provider{}).Start(ctx, replica.Spec{ID: fmt.Sprintf("by-hand-%d", i),
		Source: src.ConnString("postgres"), SourceDatabase: db, Target: tgt.ConnString("postgres"), TargetDatabase: db})
	if err != nil {
		b.Fatal(err)
	}
	defer stream.Close()
	for {
		p, err := stream.Progress(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if p.Phase == replica.PhaseStreaming && p.LagBytes < 1<<20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	settle(b, func() error { return w.WaitForAcks(ctx, 50) })
	w.ResetGap()

	admin, err := src.Connect(ctx, "postgres")
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	closed := time.Now()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" WITH ALLOW_CONNECTIONS false"); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND backend_type = 'client backend'`, db); err != nil {
		b.Fatal(err)
	}
	pos, err := stream.Barrier(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.WaitFor(ctx, pos); err != nil {
		b.Fatal(err)
	}
	if err := stream.SyncSequences(ctx); err != nil {
		b.Fatal(err)
	}
	app.connString.Store(connStringOf(tgt, to, db))
	window = time.Since(closed)
	settle(b, func() error { return w.WaitForAcks(ctx, 50) })
	st := w.Stop()
	if err := stream.Finish(ctx); err != nil {
		b.Fatal(err)
	}
	missing = missingOnInstance(b, f, to, db, w.Missing)
	if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
		b.Fatal(err)
	}
	return st.MaxGap, window, st.Errors, missing
}

// connStringOf is the application's connection string to db on inst.
func connStringOf(inst *localpg.Instance, name, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(localpg.SuperuserDefault, "pw-"+name+"-secret"),
		Host: net.JoinHostPort(localpg.Host, strconv.Itoa(inst.Port())), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// connStringApp is an application without this library: it reaches the
// tenant through a pool of its current connection string, and retries a
// failed request with exponential backoff, giving it up (an error its
// user sees) after 5 s. It is a cutovertest.Connector.
type connStringApp struct {
	connString atomic.Value // string
	mu         sync.Mutex
	pools      map[string]*pgxpool.Pool
}

func newConnStringApp(connString string) *connStringApp {
	a := &connStringApp{pools: map[string]*pgxpool.Pool{}}
	a.connString.Store(connString)
	return a
}

// Do implements cutovertest.Connector.
func (a *connStringApp) Do(ctx context.Context, _ string, fn func(*pgxpool.Conn) error) error {
	bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(10*time.Millisecond),
		backoff.WithMultiplier(2), backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(5*time.Second))
	return backoff.Retry(func() error {
		p, err := a.pool(ctx)
		if err != nil {
			return err
		}
		conn, err := p.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		return fn(conn)
	}, backoff.WithContext(bo, ctx))
}

func (a *connStringApp) pool(ctx context.Context) (*pgxpool.Pool, error) {
	cs := a.connString.Load().(string)
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pools[cs]; ok {
		return p, nil
	}
	p, err := pgxpool.New(ctx, cs)
	if err != nil {
		return nil, err
	}
	a.pools[cs] = p
	return p, nil
}

func (a *connStringApp) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for cs, p := range a.pools {
		p.Close()
		delete(a.pools, cs)
	}
}

// pct is the p-th percentile of sorted by nearest rank: with 20
// samples, p99 is the largest.
func pct(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
