package flags_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestForgetRetiredRoute: once a move is over and the catalog has the
// tenant where its route says, forgetting the route deletes the row; a
// new reader resolves the catalog's route, a Router that followed the
// route keeps working, and a route published later, at epoch 1 again (a
// new move of the tenant), is followed by that same Router.
func TestForgetRetiredRoute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPGEnv(t)
	pub, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{Catalog: e.catalog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	r, _ := e.router(t, flags.RouterConfig{})

	// A move of t1 to B: paused, then switched at epoch 2; the catalog
	// records it.
	paused := flags.RouteTo(e.instA, "tenant_1", 1)
	paused.Paused = true
	for _, route := range []flags.Route{paused, flags.RouteTo(e.instB, "tenant_1", 2)} {
		if err := pub.Publish(ctx, "t1", route); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the router to follow the move", 5*time.Second, func() bool { route, _ := r.Route(ctx, "t1"); return route.Epoch == 2 })
	if f, err := pub.Forget(ctx, "t1", 2); !errors.Is(err, flags.ErrNotForgettable) || f {
		t.Errorf("forget while the catalog still has t1 on A: %v, %v; want ErrNotForgettable", f, err)
	}
	if err := e.catalog.Assign(ctx, "t1", "pg-b", nil); err != nil {
		t.Fatal(err)
	}
	if f, err := pub.Forget(ctx, "t1", 1); err != nil || f {
		t.Errorf("forget epoch 1 while the route is at 2: %v, %v; want nothing forgotten", f, err)
	}
	if f, err := pub.Forget(ctx, "t1", 2); err != nil || !f {
		t.Fatalf("forget the retired route: %v, %v", f, err)
	}
	if n := rowCount(t, e, "t1"); n != 0 {
		t.Errorf("%d rows left for t1 after Forget", n)
	}
	if f, err := pub.Forget(ctx, "t1", 2); err != nil || f {
		t.Errorf("forget again: %v, %v; want nothing to do", f, err)
	}

	fresh, err := flags.NewResolver(flagstest.Client(t, e.provider(t)), e.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fresh.Resolve(ctx, "t1"); err != nil || got != flags.RouteTo(e.instB, "tenant_1", 0) {
		t.Errorf("a new reader after Forget: %v, %v; want the catalog's route to B", got, err)
	}
	if err := r.Do(ctx, "t1", func(c *pgxpool.Conn) error {
		if p := serverPort(t, c); p != e.b.Port() {
			t.Errorf("after Forget the router connects to port %d, want B's %d", p, e.b.Port())
		}
		return nil
	}); err != nil {
		t.Fatalf("Acquire after Forget: %v", err)
	}

	// A new move, back to A, starts again at epoch 1: the Router that
	// saw epoch 2 follows it.
	if err := pub.Publish(ctx, "t1", flags.RouteTo(e.instA, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the router to follow the route published after Forget", 5*time.Second, func() bool {
		route, _ := r.Route(ctx, "t1")
		return route.Instance == "pg-a"
	})
	waitFor(t, "the new reader to follow the new publish", 5*time.Second, func() bool {
		got, err := fresh.Resolve(ctx, "t1")
		return err == nil && got.Instance == "pg-a" && got.Epoch == 1
	})
}

// TestMemoryForget: the memory provider forgets as the PostgreSQL one
// does, and a Resolver follows a route published after.
func TestMemoryForget(t *testing.T) {
	ctx := context.Background()
	cat, a, b := memCatalog(t)
	p := flags.NewMemoryProviderWithConfig(&flags.MemoryConfig{Catalog: cat})
	res, err := flags.NewResolver(flagstest.Client(t, p), cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, "t1", flags.RouteTo(b, "tenant_1", 4)); err != nil {
		t.Fatal(err)
	}
	if got, _ := res.Resolve(ctx, "t1"); got.Epoch != 4 {
		t.Fatalf("Resolve = %v", got)
	}
	if _, err := p.Forget(ctx, "t1", 4); !errors.Is(err, flags.ErrNotForgettable) {
		t.Errorf("forget a route the catalog does not say: %v", err)
	}
	if err := cat.Assign(ctx, "t1", "pg-b", &fleet.AssignOpts{From: "pg-a"}); err != nil {
		t.Fatal(err)
	}
	if f, err := p.Forget(ctx, "t1", 4); err != nil || !f {
		t.Fatalf("Forget = %v, %v", f, err)
	}
	if _, ok := p.Lookup("t1"); ok {
		t.Error("the route is still held")
	}
	if got, err := res.Resolve(ctx, "t1"); err != nil || got.Instance != "pg-b" {
		t.Errorf("after Forget: %v, %v; want B, where the catalog has t1", got, err)
	}
	if err := p.Publish(ctx, "t1", flags.RouteTo(a, "tenant_1", 1)); err != nil {
		t.Fatal(err)
	}
	if got, err := res.Resolve(ctx, "t1"); err != nil || got != flags.RouteTo(a, "tenant_1", 1) {
		t.Errorf("a route published after Forget at epoch 1: %v, %v; want it followed", got, err)
	}
	if _, err := p.Forget(ctx, "", 1); !errors.Is(err, flags.ErrInvalidRoute) {
		t.Errorf("forget an empty tenant ID: %v", err)
	}
}

func rowCount(t *testing.T, e *pgEnv, tenant string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := e.a.Connect(ctx, "control")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM daisychain.routes WHERE tenant = $1", tenant).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestResolverFindsAMoveItDidNotSee: a Resolver that served a tenant's
// route, then was not asked about it while the tenant was moved and its
// route forgotten (retired), finds the tenant where the catalog has it
// now: through its provider's cache, which the forget's notification
// updated, and through a provider that no longer holds the tenant and
// reads it again. Before, it served the old route for as long as it
// remembered the tenant: traffic to a retired copy.
func TestResolverFindsAMoveItDidNotSee(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPGEnv(t)
	e.addTenant(t, "t2", "tenant_2")
	pub, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{Catalog: e.catalog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	cached := e.provider(t)
	small, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{RouteCacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(small.Close)
	readers := map[string]*flags.Resolver{}
	for name, p := range map[string]*flags.PostgresProvider{"cached": cached, "evicted": small} {
		if readers[name], err = flags.NewResolver(flagstest.Client(t, p), e.catalog, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A move of t1 to B rolled back: the route says A at epoch 2, and
	// both readers serve it.
	for _, route := range []flags.Route{flags.RouteTo(e.instA, "tenant_1", 1), flags.RouteTo(e.instA, "tenant_1", 2)} {
		if err := pub.Publish(ctx, "t1", route); err != nil {
			t.Fatal(err)
		}
	}
	for name, res := range readers {
		waitFor(t, name+" reader to serve epoch 2", 5*time.Second, func() bool {
			got, err := res.Resolve(ctx, "t1")
			return err == nil && got.Epoch == 2
		})
	}
	// The small provider holds one tenant: t2 takes t1's place.
	if _, err := readers["evicted"].Resolve(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	// Another move, unseen by the readers: to B at epochs 3 and 4, the
	// catalog updated, the route forgotten.
	for _, route := range []flags.Route{flags.RouteTo(e.instA, "tenant_1", 3), flags.RouteTo(e.instB, "tenant_1", 4)} {
		if err := pub.Publish(ctx, "t1", route); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.catalog.Assign(ctx, "t1", "pg-b", nil); err != nil {
		t.Fatal(err)
	}
	if f, err := pub.Forget(ctx, "t1", 4); err != nil || !f {
		t.Fatalf("forget: %v, %v", f, err)
	}
	for name, res := range readers {
		waitFor(t, name+" reader to find t1 on B", 5*time.Second, func() bool {
			got, err := res.Resolve(ctx, "t1")
			return err == nil && got.Instance == "pg-b"
		})
	}

	// A reader that followed a move from the catalog's answer (t2 had no
	// route) to its end must not go back to that answer, held for
	// CatalogTTL, once the route is forgotten.
	res := readers["cached"]
	if got, err := res.Resolve(ctx, "t2"); err != nil || got.Instance != "pg-a" {
		t.Fatalf("t2 before its move: %v, %v", got, err)
	}
	localpgtest.CreateDatabase(t, e.b, "tenant_2")
	for _, route := range []flags.Route{flags.RouteTo(e.instA, "tenant_2", 1), flags.RouteTo(e.instB, "tenant_2", 2)} {
		if err := pub.Publish(ctx, "t2", route); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the reader to follow t2's switch", 5*time.Second, func() bool {
		got, err := res.Resolve(ctx, "t2")
		return err == nil && got.Instance == "pg-b"
	})
	if err := e.catalog.Assign(ctx, "t2", "pg-b", nil); err != nil {
		t.Fatal(err)
	}
	if f, err := pub.Forget(ctx, "t2", 2); err != nil || !f {
		t.Fatalf("forget: %v, %v", f, err)
	}
	for end := time.Now().Add(flags.CatalogTTLDefault * 3 / 4); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if got, err := res.Resolve(ctx, "t2"); err != nil || got.Instance != "pg-b" {
			t.Fatalf("t2 after its route was forgotten: %v, %v; want B", got, err)
		}
	}

	// A move the reader did not see at all, from the catalog's answer it
	// holds to the forget, within CatalogTTL: it must not serve that
	// answer, now from before the move, once the forget is known.
	e.addTenant(t, "t3", "tenant_3")
	localpgtest.CreateDatabase(t, e.b, "tenant_3")
	if got, err := res.Resolve(ctx, "t3"); err != nil || got.Instance != "pg-a" {
		t.Fatalf("t3 before its move: %v, %v", got, err)
	}
	for _, route := range []flags.Route{flags.RouteTo(e.instA, "tenant_3", 1), flags.RouteTo(e.instB, "tenant_3", 2)} {
		if err := pub.Publish(ctx, "t3", route); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.catalog.Assign(ctx, "t3", "pg-b", nil); err != nil {
		t.Fatal(err)
	}
	if f, err := pub.Forget(ctx, "t3", 2); err != nil || !f {
		t.Fatalf("forget: %v, %v", f, err)
	}
	time.Sleep(100 * time.Millisecond) // the notifications arrive
	for end := time.Now().Add(flags.CatalogTTLDefault / 2); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if got, err := res.Resolve(ctx, "t3"); err != nil || got.Instance != "pg-b" {
			t.Fatalf("t3 after a move it did not see: %v, %v; want B", got, err)
		}
	}
}
