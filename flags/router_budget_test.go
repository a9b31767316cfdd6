package flags_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestRouterConnectionBudget: a Router never holds more server
// connections to an instance than MaxConnsPerInstance, across the pools
// of its tenant databases, as the server counts them: a caller beyond the
// cap waits, bounded by its context, and gets a connection once one is
// free, even when the free one sat idle in another tenant's pool; under
// concurrent load on many tenants every call completes.
func TestRouterConnectionBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	const dbs, budget = 6, 3
	for i := range dbs {
		localpgtest.CreateDatabase(t, e.a, fmt.Sprintf("db_%d", i))
		if err := e.catalog.AddTenant(ctx, fleet.Tenant{ID: fmt.Sprintf("u%d", i), Database: fmt.Sprintf("db_%d", i), Instance: "pg-a"}); err != nil {
			t.Fatal(err)
		}
	}
	const app = "flags-test-budget"
	res, err := flags.NewResolver(flagstest.Client(t, flags.NewMemoryProvider()), e.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res, MaxConnsPerInstance: budget,
		PoolConfig: flagstest.PoolConfig(e.byID, "application_name="+app+"&pool_max_conns=4")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	held := make([]*pgxpool.Conn, budget)
	defer func() { // before r.Close, which waits for them, if the test fails
		for _, c := range held {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i := range held {
		if held[i], err = r.Acquire(ctx, fmt.Sprintf("u%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if c, err := r.Acquire(short, "u3"); !errors.Is(err, context.DeadlineExceeded) {
		if c != nil {
			c.Release()
		}
		t.Fatalf("a 4th connection with a budget of %d: %v; want it to wait until the context ends", budget, err)
	}
	if n := clientConns(t, e.a, app); n != budget {
		t.Errorf("%d server connections with %d held", n, budget)
	}
	held[0].Release() // idle in u0's pool: u3 takes its place
	held[0] = nil
	c, err := r.Acquire(ctx, "u3")
	if err != nil {
		t.Fatalf("a connection once one is idle: %v", err)
	}
	c.Release()
	for i, c := range held[1:] {
		c.Release()
		held[i+1] = nil
	}

	// Load: every tenant, more callers than the budget.
	var most atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			if n := int64(clientConns(t, e.a, app)); n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	var wg sync.WaitGroup
	var calls atomic.Int64
	for w := range 12 {
		wg.Go(func() {
			for range 25 {
				tenant := fmt.Sprintf("u%d", rand.IntN(dbs))
				err := r.Do(ctx, tenant, func(c *pgxpool.Conn) error {
					_, err := c.Exec(ctx, "SELECT pg_sleep(0.002)")
					return err
				})
				if err != nil {
					t.Errorf("caller %d, tenant %s: %v", w, tenant, err)
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	t.Logf("%d calls; at most %d server connections seen", calls.Load(), most.Load())
	if most.Load() > budget {
		t.Errorf("%d server connections to the instance at once; the budget is %d", most.Load(), budget)
	}
	if n := clientConns(t, e.a, app); n > budget {
		t.Errorf("%d server connections after the load; the budget is %d", n, budget)
	}
}

// TestRouterClosesIdlePools: a tenant database's pool unused for
// PoolIdleTimeout is closed, its connections with it, and the next
// Acquire opens a new one.
func TestRouterClosesIdlePools(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	// Long enough that the count right after a call does not race the
	// close on a loaded machine (CI saw 0 at 100ms).
	r, _ := e.router(t, flags.RouterConfig{PoolIdleTimeout: 2 * time.Second})
	for range 2 {
		if err := r.Do(ctx, "t1", func(c *pgxpool.Conn) error { _, err := c.Exec(ctx, "SELECT 1"); return err }); err != nil {
			t.Fatal(err)
		}
		if n := clientConns(t, e.a, routerApp); n != 1 {
			t.Errorf("%d router connections right after a call, want 1 idle in the pool", n)
		}
		waitFor(t, "the idle pool to close", 15*time.Second, func() bool { return clientConns(t, e.a, routerApp) == 0 })
	}
	// A pool in use is not closed.
	c, err := r.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("a connection held beyond the idle timeout: %v", err)
	}
	c.Release()
}

// TestRouterReclaimsOnlyWhatTheBudgetNeeds: a pool beyond the instance's
// cap takes the slot of one idle connection of another tenant's pool,
// and leaves that pool's other idle connections open.
func TestRouterReclaimsOnlyWhatTheBudgetNeeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	e.addTenant(t, "u2", "db_u2")
	const budget = 3
	r, _ := e.router(t, flags.RouterConfig{MaxConnsPerInstance: budget})
	held := make([]*pgxpool.Conn, budget)
	for i := range held {
		c, err := r.Acquire(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		held[i] = c
	}
	for _, c := range held {
		c.Release()
	}
	if n := flags.PoolConns(r, "t1"); n != budget {
		t.Fatalf("t1's pool holds %d connections, want %d idle", n, budget)
	}
	if err := r.Do(ctx, "u2", func(c *pgxpool.Conn) error { _, err := c.Exec(ctx, "SELECT 1"); return err }); err != nil {
		t.Fatal(err)
	}
	if n := flags.PoolConns(r, "t1"); n != budget-1 {
		t.Errorf("t1's pool holds %d connections after u2 took one slot; want %d: one closed for u2, the others kept", n, budget-1)
	}
	if n := flags.PoolConns(r, "u2"); n != 1 {
		t.Errorf("u2's pool holds %d connections, want 1", n)
	}
}
