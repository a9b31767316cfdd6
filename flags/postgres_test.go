package flags_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
)

func TestPostgresProviderPublishAndFollow(t *testing.T) {
	ctx := context.Background()
	e := newPGEnv(t)
	pub := e.provider(t) // publishes only: never initialized
	reader := e.provider(t)
	c := flagstest.Client(t, reader)

	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instB, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reader to see epoch 1", 5*time.Second, func() bool {
		r, err := evaluate(t, c, "t1")
		return err == nil && r.Epoch == 1 && r.Instance == "pg-b"
	})

	// Epochs only grow, across publishers.
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 1)); !errors.Is(err, flags.ErrStaleEpoch) {
		t.Errorf("same epoch: %v, want ErrStaleEpoch", err)
	}
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 0)); !errors.Is(err, flags.ErrInvalidRoute) {
		t.Errorf("epoch 0: %v, want ErrInvalidRoute", err)
	}
	pubs := []*flags.PostgresProvider{pub, reader, e.provider(t)}
	var wg sync.WaitGroup
	errs := make([]error, len(pubs))
	for i, p := range pubs {
		wg.Go(func() { errs[i] = p.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 2)) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, flags.ErrStaleEpoch):
			t.Errorf("concurrent publish: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent publishers of epoch 2 won, want 1", won, len(pubs))
	}

	// The row, as stored.
	conn, err := e.a.Connect(ctx, "control")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var inst string
	var epoch int64
	if err := conn.QueryRow(ctx, `SELECT route->>'instance', epoch FROM daisychain.routes WHERE tenant = 't1'`).Scan(&inst, &epoch); err != nil {
		t.Fatal(err)
	}
	if inst != "pg-a" || epoch != 2 {
		t.Errorf("stored route: %s epoch %d", inst, epoch)
	}
	// Published reads the store, even through a provider that was never
	// initialized and so holds nothing in memory.
	fresh := e.provider(t)
	if r, ok, err := fresh.Published(ctx, "t1"); err != nil || !ok || r.Epoch != 2 || r.Instance != "pg-a" {
		t.Errorf("Published(t1) = %v, %v, %v; want pg-a epoch 2", r, ok, err)
	}
	if _, ok, err := fresh.Published(ctx, "nobody"); err != nil || ok {
		t.Errorf("Published(nobody) = %v, %v; want not found", ok, err)
	}

	// A provider initialized later starts from the snapshot.
	late := flagstest.Client(t, e.provider(t))
	if r, err := evaluate(t, late, "t1"); err != nil || r.Epoch != 2 {
		t.Errorf("late provider: %v, %v", r, err)
	}
}

// TestPostgresProviderRecovers cuts the listening connection with
// pg_terminate_backend and keeps it from reconnecting while routes are
// published: the provider reports itself stale, then reconnects, reloads,
// and serves the latest route.
func TestPostgresProviderRecovers(t *testing.T) {
	ctx := context.Background()
	e := newPGEnv(t)
	pub := e.provider(t)
	reader := e.provider(t)
	c := flagstest.Client(t, reader)
	events := map[openfeature.EventType]chan openfeature.EventDetails{}
	for _, et := range []openfeature.EventType{openfeature.ProviderStale, openfeature.ProviderReady, openfeature.ProviderConfigChange} {
		ch := make(chan openfeature.EventDetails, 100)
		events[et] = ch
		cb := openfeature.EventCallback(ptr(func(d openfeature.EventDetails) { ch <- d }))
		c.AddHandler(et, cb)
		t.Cleanup(func() { c.RemoveHandler(et, cb) })
	}
	drain(events[openfeature.ProviderReady])

	// The reader follows the tenants it was asked about: t1, which has
	// no route yet.
	if _, err := evaluate(t, c, "t1"); err == nil {
		t.Fatal("t1 has a route before any was published")
	}
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instB, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "epoch 1", 5*time.Second, func() bool { r, _ := reader.Lookup("t1"); return r.Epoch == 1 })
	pid := reader.ListenerPID()
	if pid == 0 {
		t.Fatal("no listener PID")
	}

	// Nobody may connect to the control database for now; the
	// publisher's pool keeps its open connection.
	admin(t, e.a, "ALTER DATABASE control ALLOW_CONNECTIONS false")
	admin(t, e.a, "SELECT pg_terminate_backend($1)", int64(pid))
	expect(t, events[openfeature.ProviderStale], "PROVIDER_STALE")
	if s := c.State(); s != openfeature.StaleState {
		t.Errorf("client state %s, want STALE", s)
	}
	for epoch := int64(2); epoch <= 3; epoch++ {
		if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", epoch)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // reconnection attempts fail meanwhile
	if r, err := evaluate(t, c, "t1"); err != nil || r.Epoch != 1 {
		t.Fatalf("while stale: %v, %v; want the last known route (epoch 1) served from memory", r, err)
	}

	admin(t, e.a, "ALTER DATABASE control ALLOW_CONNECTIONS true")
	expect(t, events[openfeature.ProviderReady], "PROVIDER_READY")
	if r, err := evaluate(t, c, "t1"); err != nil || r.Epoch != 3 || r.Instance != "pg-a" {
		t.Errorf("after recovery: %v, %v; want epoch 3 on pg-a", r, err)
	}
	for {
		d := expect(t, events[openfeature.ProviderConfigChange], "PROVIDER_CONFIGURATION_CHANGED after reload")
		if tenants, ok := d.EventMetadata[flags.EventMetadataTenants].([]string); ok {
			if !slices.Equal(tenants, []string{"t1"}) {
				t.Errorf("reload event names tenants %v", tenants)
			}
			break
		}
	}
	if s := c.State(); s != openfeature.ReadyState {
		t.Errorf("client state %s, want READY", s)
	}
	if p := reader.ListenerPID(); p == 0 || p == pid {
		t.Errorf("listener PID %d after reconnect (was %d)", p, pid)
	}
	// And it follows notifications again.
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instB, "tenant_1", 4)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "epoch 4", 5*time.Second, func() bool { r, _ := reader.Lookup("t1"); return r.Epoch == 4 })
}

func drain[T any](ch chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func expect(t *testing.T, ch chan openfeature.EventDetails, what string) openfeature.EventDetails {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s event", what)
		return openfeature.EventDetails{}
	}
}

// TestPostgresProviderRecoversFromAFailedReread: a reconnection that
// connects but cannot re-read the cached routes (here the table is
// renamed away) closes what it opened and tries again; once the table is
// back the provider is ready and serves the latest route.
func TestPostgresProviderRecoversFromAFailedReread(t *testing.T) {
	ctx := context.Background()
	e := newPGEnv(t)
	pub := e.provider(t)
	reader := e.provider(t)
	c := flagstest.Client(t, reader)
	ready := make(chan openfeature.EventDetails, 100)
	cb := openfeature.EventCallback(ptr(func(d openfeature.EventDetails) { ready <- d }))
	c.AddHandler(openfeature.ProviderReady, cb)
	t.Cleanup(func() { c.RemoveHandler(openfeature.ProviderReady, cb) })
	drain(ready)
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instB, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	if r, err := evaluate(t, c, "t1"); err != nil || r.Epoch != 1 {
		t.Fatalf("before: %v, %v", r, err)
	}
	table := pgx.Identifier{fleet.SchemaDefault, "routes"}.Sanitize()
	controlAdmin := func(sql string, args ...any) {
		t.Helper()
		conn, err := e.a.Connect(ctx, "control")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	controlAdmin("ALTER TABLE " + table + " RENAME TO routes_away")
	controlAdmin("SELECT pg_terminate_backend($1)", int64(reader.ListenerPID()))
	time.Sleep(500 * time.Millisecond) // reconnections connect, LISTEN, and fail to re-read
	controlAdmin("ALTER TABLE " + pgx.Identifier{fleet.SchemaDefault, "routes_away"}.Sanitize() + " RENAME TO routes")
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 2)); err != nil {
		t.Fatal(err)
	}
	expect(t, ready, "PROVIDER_READY")
	waitFor(t, "epoch 2", 10*time.Second, func() bool { r, _ := reader.Lookup("t1"); return r.Epoch == 2 })
}
