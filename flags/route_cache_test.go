package flags_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
)

// publishN publishes routes to instance A for tenants t-0 ... t-(n-1) at
// epoch, in one PublishMany.
func publishN(t *testing.T, e *pgEnv, pub flags.BatchPublisher, n int, epoch int64) {
	t.Helper()
	routes := make([]flags.TenantRoute, n)
	for i := range routes {
		routes[i] = flags.TenantRoute{Tenant: fmt.Sprintf("t-%d", i), Route: flags.RouteTo(e.instA, "tenant_1", epoch)}
	}
	if err := pub.PublishMany(context.Background(), routes); err != nil {
		t.Fatal(err)
	}
}

// TestRoutesOnDemand: a provider holds the routes of the tenants it is
// asked about, within its cache size: the least recently used go first,
// and an evicted tenant's route is read again, current, on its next use;
// a cached tenant's route follows notifications without being asked.
func TestRoutesOnDemand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	pub := e.provider(t)
	publishN(t, e, pub, 200, 1)
	reader, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{RouteCacheSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	c := flagstest.Client(t, reader)
	if s := reader.CacheStats(); s.Cached != 0 || s.Fetches != 0 {
		t.Fatalf("after Init with 200 routes in the table: %+v; want nothing read", s)
	}
	for i := range 5 {
		if r, err := evaluate(t, c, fmt.Sprintf("t-%d", i)); err != nil || r.Epoch != 1 {
			t.Fatalf("t-%d: %v, %v", i, r, err)
		}
	}
	if s := reader.CacheStats(); s.Cached != 3 || s.Evictions != 2 || s.Fetches != 5 {
		t.Errorf("after 5 tenants through a cache of 3: %+v; want 3 cached, 2 evicted, 5 fetches", s)
	}
	if _, ok := reader.Lookup("t-0"); ok {
		t.Error("t-0, the least recently used, is still held")
	}
	// A cached tenant follows notifications; an evicted one is read
	// again when next used, and gets the route published meanwhile.
	if err := pub.Publish(ctx, "t-4", flags.RouteTo(e.instA, "tenant_1", 2)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "t-0", flags.RouteTo(e.instA, "tenant_1", 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cached t-4 to follow", 5*time.Second, func() bool { r, _ := reader.Lookup("t-4"); return r.Epoch == 2 })
	if r, err := evaluate(t, c, "t-0"); err != nil || r.Epoch != 2 {
		t.Errorf("evicted t-0 on its next use: %v, %v; want epoch 2", r, err)
	}
	if s := reader.CacheStats(); s.Cached != 3 || s.Fetches != 6 {
		t.Errorf("after t-0 again: %+v; want 3 cached, 6 fetches", s)
	}
	// A tenant without a route is remembered as such, and follows too.
	if _, err := evaluate(t, c, "nobody"); err == nil {
		t.Error("a tenant without a route evaluated")
	}
	if err := pub.Publish(ctx, "nobody", flags.RouteTo(e.instA, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cached absence to follow", 5*time.Second, func() bool { _, ok := reader.Lookup("nobody"); return ok })
}

// TestConcurrentMissesShareOneRead: many evaluations of a tenant not yet
// cached cost one query, which the others wait for. The route table is
// locked so that every evaluation is under way at once; the server then
// shows how many reads wait for the lock.
func TestConcurrentMissesShareOneRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	pub := e.provider(t)
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	// A fetch that waits longer than the lock is held: with the default
	// (2 s), a starved machine could see every read give up before it
	// looked, and no read wait any more.
	reader, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{FetchTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	c := flagstest.Client(t, reader)
	// A first evaluation (of another tenant) before the lock: the
	// reader's pool has its connection and the query its plan, so the
	// evaluations below wait on the table, not on their set-up.
	_, _ = evaluate(t, c, "nobody") // not found: only its set-up matters
	before := reader.CacheStats().Fetches

	lock, err := e.a.Connect(ctx, "control")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE daisychain.routes IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, err := evaluate(t, c, "t1")
			if err == nil && r.Epoch != 1 {
				err = fmt.Errorf("epoch %d", r.Epoch)
			}
			errs[i] = err
		})
	}
	waiting := func() int {
		var k int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT route, seq FROM%'`).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	waitFor(t, "a read to wait for the lock", 30*time.Second, func() bool { return waiting() > 0 }) // CI saw 5s pass on a loaded machine
	time.Sleep(100 * time.Millisecond)                                                              // the other evaluations are under way too
	if k := waiting(); k != 1 {
		t.Errorf("%d reads of the route wait for the lock with %d evaluations under way; want 1", k, n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("evaluation %d: %v", i, err)
		}
	}
	if k := reader.CacheStats().Fetches - before; k != 1 {
		t.Errorf("%d fetches for %d concurrent first evaluations; want 1", k, n)
	}
}

// TestReconnectRereadsCachedTenantsOnly: after the listening connection
// comes back, the provider re-reads the routes of the tenants it holds
// (those changed meanwhile are announced), and loads no other.
func TestReconnectRereadsCachedTenantsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	pub := e.provider(t)
	publishN(t, e, pub, 100, 1)
	reader := e.provider(t)
	c := flagstest.Client(t, reader)
	changes := make(chan openfeature.EventDetails, 100)
	ready := make(chan openfeature.EventDetails, 10)
	for ch, et := range map[chan openfeature.EventDetails]openfeature.EventType{changes: openfeature.ProviderConfigChange, ready: openfeature.ProviderReady} {
		cb := openfeature.EventCallback(ptr(func(d openfeature.EventDetails) { ch <- d }))
		c.AddHandler(et, cb)
		t.Cleanup(func() { c.RemoveHandler(et, cb) })
	}
	for _, tenant := range []string{"t-1", "t-2"} {
		if _, err := evaluate(t, c, tenant); err != nil {
			t.Fatal(err)
		}
	}
	drain(ready)

	admin(t, e.a, "ALTER DATABASE control ALLOW_CONNECTIONS false")
	admin(t, e.a, "SELECT pg_terminate_backend($1)", int64(reader.ListenerPID()))
	for _, tenant := range []string{"t-1", "t-7", "t-8"} { // one cached, two not
		if err := pub.Publish(ctx, tenant, flags.RouteTo(e.instA, "tenant_1", 2)); err != nil {
			t.Fatal(err)
		}
	}
	drain(changes)
	admin(t, e.a, "ALTER DATABASE control ALLOW_CONNECTIONS true")
	expect(t, ready, "PROVIDER_READY")
	d := expect(t, changes, "PROVIDER_CONFIGURATION_CHANGED after the re-read")
	if got, _ := d.EventMetadata[flags.EventMetadataTenants].([]string); len(got) != 1 || got[0] != "t-1" {
		t.Errorf("re-read announced %v; want [t-1]", d.EventMetadata)
	}
	if r, _ := reader.Lookup("t-1"); r.Epoch != 2 {
		t.Errorf("cached t-1 after the re-read: %v; want epoch 2", r)
	}
	if s := reader.CacheStats(); s.Cached != 2 {
		t.Errorf("after the re-read the provider holds %d tenants; want the 2 it was asked about", s.Cached)
	}
	if _, ok := reader.Lookup("t-7"); ok {
		t.Error("the re-read loaded t-7, which nobody asked about")
	}
}

// listen returns a connection listening on the routes channel of the
// default schema.
func listen(t *testing.T, e *pgEnv) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := e.a.Connect(ctx, "control")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `LISTEN "daisychain.routes"`); err != nil {
		t.Fatal(err)
	}
	return conn
}
