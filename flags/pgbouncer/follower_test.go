package pgbouncer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/flags/pgbouncer"
	"github.com/daisychain-db/daisychain/flags/pgbouncer/pgbouncertest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// memoryRoutes is a MemoryProvider over a catalog of instances pg-a and
// pg-b (endpoints only: nothing connects to them through the catalog),
// read by a Resolver.
type memoryRoutes struct {
	catalog  *fleet.MemoryCatalog
	routes   *flags.MemoryProvider
	resolver *flags.Resolver
	a, b     fleet.Instance
}

func newMemoryRoutes(t *testing.T, portA, portB int, tenants ...string) *memoryRoutes {
	t.Helper()
	ctx := context.Background()
	m := &memoryRoutes{catalog: fleet.NewMemoryCatalog()}
	m.a = fleet.Instance{ID: "pg-a", Admin: "postgres://127.0.0.1/postgres", Endpoint: fleet.Endpoint{Host: "127.0.0.1", Port: portA}}
	m.b = fleet.Instance{ID: "pg-b", Admin: "postgres://127.0.0.1/postgres", Endpoint: fleet.Endpoint{Host: "127.0.0.1", Port: portB}}
	must(t, m.catalog.RegisterInstance(ctx, m.a))
	must(t, m.catalog.RegisterInstance(ctx, m.b))
	for _, tenant := range tenants {
		must(t, m.catalog.AddTenant(ctx, fleet.Tenant{ID: tenant, Database: tenant, Instance: "pg-a"}))
	}
	m.routes = flags.NewMemoryProviderWithConfig(&flags.MemoryConfig{Catalog: m.catalog})
	var err error
	m.resolver, err = flags.NewResolver(flagstest.Client(t, m.routes), m.catalog, nil)
	must(t, err)
	return m
}

// run runs f until the test ends, and returns its events.
func run(t *testing.T, f *pgbouncer.Follower) <-chan *pgbouncer.Event {
	t.Helper()
	events, unsubscribe := f.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		unsubscribe()
	})
	return events
}

// waitFor returns the next event of kind, failing the test on a failed
// round or after a minute.
func waitFor(t *testing.T, events <-chan *pgbouncer.Event, kind pgbouncer.EventKind) *pgbouncer.Event {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case e := <-events:
			if e.Kind == pgbouncer.EventFailed && kind != pgbouncer.EventFailed {
				t.Fatalf("round failed while waiting for %s: %v", kind, e.Err)
			}
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event within a minute", kind)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// serverPort is the port of the server a PgBouncer client's statement
// ran on.
func serverPort(ctx context.Context, client *pgx.Conn) (int, error) {
	var port int
	err := client.QueryRow(ctx, "SELECT current_setting('port')::int").Scan(&port)
	return port, err
}

// TestFollowerFollowsAMove: the Follower writes the tenant's entry, holds
// PgBouncer's clients while the route is paused, points the entry at the
// new endpoint and resumes once the route is published there (a held
// statement then runs on the new server, without an error), resumes
// after a pause that ends where it began, and leaves alone a pause that
// is not its own.
func TestFollowerFollowsAMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, dst := localpgtest.Start(t, nil), localpgtest.Start(t, nil)
	localpgtest.CreateDatabase(t, src, "acme")
	localpgtest.CreateDatabase(t, dst, "acme")
	m := newMemoryRoutes(t, src.Port(), dst.Port(), "acme")
	pgb := pgbouncertest.Start(t, nil) // no entries yet
	f, err := pgbouncer.New(&pgbouncer.Config{Resolver: m.resolver, Admin: pgb.Admin, File: pgb.File,
		Tenants: []string{"acme"}, Options: map[string]string{"pool_size": "4"}})
	must(t, err)
	events := run(t, f)
	waitFor(t, events, pgbouncer.EventSynced)
	console := pgb.Console(t)
	if got := pgbouncertest.Databases(t, console)["acme"]; got.Port != src.Port() || got.Paused {
		t.Fatalf("entry after the start: %+v, want the catalog's (port %d), not paused", got, src.Port())
	}
	content, err := os.ReadFile(pgb.File)
	must(t, err)
	if want := fmt.Sprintf("acme = host=127.0.0.1 port=%d dbname=acme pool_size=4\n", src.Port()); !strings.Contains(string(content), want) {
		t.Errorf("the file does not hold %q:\n%s", want, content)
	}
	client, err := pgx.Connect(ctx, pgb.ClientURL("acme"))
	must(t, err)
	defer client.Close(ctx)
	if port, err := serverPort(ctx, client); err != nil || port != src.Port() {
		t.Fatalf("through PgBouncer: port %d, %v; want the source's %d", port, err, src.Port())
	}

	// The move's pause holds PgBouncer's clients.
	paused := flags.RouteTo(m.a, "acme", 1)
	paused.Paused = true
	must(t, m.routes.Publish(ctx, "acme", paused))
	waitFor(t, events, pgbouncer.EventPaused)
	type result struct {
		port int
		err  error
	}
	held := make(chan result, 1)
	go func() {
		port, err := serverPort(ctx, client)
		held <- result{port, err}
	}()
	for deadline := time.Now().Add(time.Minute); pgbouncertest.Pools(t, console, "acme").ClientsWaiting == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the client was never held")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The switch: the held statement runs on the target.
	must(t, m.routes.Publish(ctx, "acme", flags.RouteTo(m.b, "acme", 2)))
	if r := <-held; r.err != nil || r.port != dst.Port() {
		t.Fatalf("held statement after the switch: port %d, %v; want the target's %d", r.port, r.err, dst.Port())
	}
	waitFor(t, events, pgbouncer.EventResumed)
	if got := pgbouncertest.Databases(t, console)["acme"]; got.Port != dst.Port() || got.Paused {
		t.Errorf("entry after the switch: %+v, want port %d, not paused", got, dst.Port())
	}

	// A pause that ends where it began (a rollback) is resumed too.
	paused = flags.RouteTo(m.b, "acme", 3)
	paused.Paused = true
	must(t, m.routes.Publish(ctx, "acme", paused))
	waitFor(t, events, pgbouncer.EventPaused)
	must(t, m.routes.Publish(ctx, "acme", flags.RouteTo(m.b, "acme", 4)))
	waitFor(t, events, pgbouncer.EventResumed)
	if got := pgbouncertest.Databases(t, console)["acme"]; got.Paused {
		t.Errorf("entry after a pause and unpause at one endpoint: %+v, want not paused", got)
	}

	// Someone else's pause (an operator's, a fence's) stays while the
	// route does not move.
	_, err = console.Exec(ctx, "PAUSE acme")
	must(t, err)
	must(t, f.Sync(ctx))
	if got := pgbouncertest.Databases(t, console)["acme"]; !got.Paused {
		t.Errorf("the Follower resumed a pause that was not its own: %+v", got)
	}
	_, err = console.Exec(ctx, "RESUME acme")
	must(t, err)
}

// TestSyncRefusals: a File that PgBouncer does not %include is reported
// as ErrNotApplied once RELOAD shows no new entry, and a tenant whose
// PgBouncer database name the file cannot hold is named in the error
// while the others' entries are written.
func TestSyncRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newMemoryRoutes(t, 15432, 25432, "acme", "globex")
	pgb := pgbouncertest.Start(t, nil)

	elsewhere, err := pgbouncer.New(&pgbouncer.Config{Resolver: m.resolver, Admin: pgb.Admin,
		File: pgb.File + ".not-included", Tenants: []string{"acme"}})
	must(t, err)
	if err := elsewhere.Sync(ctx); !errors.Is(err, pgbouncer.ErrNotApplied) || !strings.Contains(err.Error(), "%included") {
		t.Errorf("Sync with a File PgBouncer does not read: %v, want ErrNotApplied asking whether it is %%included", err)
	}

	named, err := pgbouncer.New(&pgbouncer.Config{Resolver: m.resolver, Admin: pgb.Admin, File: pgb.File,
		Tenants: []string{"acme", "globex"},
		Database: func(tenant string, r flags.Route) string {
			if tenant == "globex" {
				return "globex corp"
			}
			return r.Endpoint.Database
		}})
	must(t, err)
	if err := named.Sync(ctx); err == nil || !strings.Contains(err.Error(), `"globex"`) || !strings.Contains(err.Error(), "Config.Database") {
		t.Errorf("Sync with a database name PgBouncer cannot read: %v, want an error naming the tenant and Config.Database", err)
	}
	dbs := pgbouncertest.Databases(t, pgb.Console(t))
	if _, ok := dbs["acme"]; !ok {
		t.Errorf("acme's entry was not written beside the refused tenant's: %v", dbs)
	}
}

// TestFollowerReconnects: after PgBouncer restarts (the Follower's admin
// session is cut), the Follower connects again and follows the next
// route change.
func TestFollowerReconnects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newMemoryRoutes(t, 15432, 25432, "acme")
	pgb := pgbouncertest.Start(t, nil)
	f, err := pgbouncer.New(&pgbouncer.Config{Resolver: m.resolver, Admin: pgb.Admin, File: pgb.File, Tenants: []string{"acme"}})
	must(t, err)
	events := run(t, f)
	waitFor(t, events, pgbouncer.EventSynced)
	pgb.Restart(t)
	must(t, m.routes.Publish(ctx, "acme", flags.RouteTo(m.b, "acme", 1)))
	failed := 0
	timeout := time.After(time.Minute)
	for reloaded := false; !reloaded; { // rounds on the cut session fail, then one reconnects
		select {
		case e := <-events:
			if e.Kind == pgbouncer.EventFailed {
				failed++
			}
			reloaded = e.Kind == pgbouncer.EventReloaded
		case <-timeout:
			t.Fatalf("the Follower did not follow the route within a minute of PgBouncer's restart (%d rounds failed)", failed)
		}
	}
	if failed == 0 {
		t.Error("no round failed on the cut session: the test tests nothing")
	}
	if got := pgbouncertest.Databases(t, pgb.Console(t))["acme"]; got.Port != m.b.Endpoint.Port {
		t.Errorf("entry after the restart and a route change: %+v, want pg-b's port %d", got, m.b.Endpoint.Port)
	}
}
