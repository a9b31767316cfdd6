package flags_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// pgEnv is two PostgreSQL instances, A and B, each with database tenant_1;
// the control database is on A; the catalog puts tenant t1 on A.
type pgEnv struct {
	a, b         *localpg.Instance
	instA, instB fleet.Instance
	catalog      *fleet.MemoryCatalog
	control      string
	byID         map[string]*localpg.Instance
}

const routerApp = "flags-test-router"

func newPGEnv(tb testing.TB) *pgEnv {
	tb.Helper()
	e := newOneEnv(tb)
	e.b = localpgtest.Start(tb, &localpg.Config{Name: "b"})
	localpgtest.CreateDatabase(tb, e.b, "tenant_1")
	e.instB = flagstest.Register(tb, e.catalog, "pg-b", e.b)
	e.byID["pg-b"] = e.b
	return e
}

// newOneEnv is newPGEnv with instance A only (b and instB are zero): for
// tests that need one server.
func newOneEnv(tb testing.TB) *pgEnv {
	tb.Helper()
	e := &pgEnv{a: localpgtest.Start(tb, &localpg.Config{Name: "a"})}
	localpgtest.CreateDatabase(tb, e.a, "tenant_1")
	localpgtest.CreateDatabase(tb, e.a, "control")
	e.control = e.a.ConnString("control")
	e.catalog = fleet.NewMemoryCatalog()
	e.instA = flagstest.Register(tb, e.catalog, "pg-a", e.a)
	if err := e.catalog.AddTenant(context.Background(), fleet.Tenant{ID: "t1", Database: "tenant_1", Instance: "pg-a"}); err != nil {
		tb.Fatal(err)
	}
	e.byID = map[string]*localpg.Instance{"pg-a": e.a}
	return e
}

func (e *pgEnv) provider(tb testing.TB) *flags.PostgresProvider {
	tb.Helper()
	p, err := flags.NewPostgresProvider(context.Background(), e.control, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

// router returns a Router reading through its own provider, connection
// and OpenFeature API; cfg may set HoldLimit and PollInterval.
func (e *pgEnv) router(tb testing.TB, cfg flags.RouterConfig) (*flags.Router, *flags.PostgresProvider) {
	tb.Helper()
	p := e.provider(tb)
	return e.routerThrough(tb, flagstest.Client(tb, p), cfg), p
}

// routerThrough returns a Router whose Resolver evaluates through
// client; cfg may set anything but Resolver and PoolConfig.
func (e *pgEnv) routerThrough(tb testing.TB, client flags.FlagClient, cfg flags.RouterConfig) *flags.Router {
	tb.Helper()
	res, err := flags.NewResolver(client, e.catalog, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Resolver = res
	cfg.PoolConfig = flagstest.PoolConfig(e.byID, "application_name="+routerApp+"&pool_max_conns=4")
	r, err := flags.NewRouter(&cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Close)
	return r
}

func serverPort(tb testing.TB, c *pgxpool.Conn) int {
	tb.Helper()
	var port int
	if err := c.QueryRow(context.Background(), "SELECT inet_server_port()").Scan(&port); err != nil {
		tb.Fatal(err)
	}
	return port
}

func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// clientConns counts the client connections to inst other than the
// caller's, optionally only those with application_name app.
func clientConns(tb testing.TB, inst *localpg.Instance, app string) int {
	tb.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND ($1 = '' OR application_name = $1)`,
		app).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func admin(tb testing.TB, inst *localpg.Instance, sql string, args ...any) {
	tb.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// addTenant creates database on instance A and puts tenant id there in
// the catalog.
func (e *pgEnv) addTenant(tb testing.TB, id, database string) {
	tb.Helper()
	localpgtest.CreateDatabase(tb, e.a, database)
	if err := e.catalog.AddTenant(context.Background(), fleet.Tenant{ID: id, Database: database, Instance: "pg-a"}); err != nil {
		tb.Fatal(err)
	}
}
