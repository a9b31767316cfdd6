package flags_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestResolverRetriesCatalog: when the catalog's connections are ended
// (a failover, an operator's pg_terminate_backend), resolving a tenant
// that only the catalog knows still succeeds: the dead connection's error
// is retried, not handed to the application.
func TestResolverRetriesCatalog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, &localpg.Config{Name: "control"})
	localpgtest.CreateDatabase(t, inst, "control")
	const app = "flags-test-catalog"
	pool, err := pgxpool.New(ctx, inst.ConnString("control")+"&application_name="+app)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	catalog, err := fleet.NewPostgresCatalog(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := flagstest.Register(t, catalog, "pg-a", inst)
	if err := catalog.AddTenant(ctx, fleet.Tenant{ID: "t1", Database: "tenant_1", Instance: "pg-a"}); err != nil {
		t.Fatal(err)
	}
	res, err := flags.NewResolver(flagstest.Client(t, flags.NewMemoryProvider()), catalog,
		&flags.ResolverConfig{CatalogTTL: -1}) // every Resolve asks the catalog
	if err != nil {
		t.Fatal(err)
	}
	want := flags.RouteTo(a, "tenant_1", 0)
	if got, err := res.Resolve(ctx, "t1"); err != nil || got != want {
		t.Fatalf("Resolve = %v, %v; want %v", got, err, want)
	}

	admin(t, inst, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app)
	if got, err := res.Resolve(ctx, "t1"); err != nil || got != want {
		t.Errorf("after the catalog's connections were ended: %v, %v; want %v", got, err, want)
	}
}

// flakyCatalog fails its first failures lookups of a tenant with a lost
// connection's error.
type flakyCatalog struct {
	fleet.Catalog
	failures int32
	calls    atomic.Int32
}

func (c *flakyCatalog) Locate(ctx context.Context, tenantID string) (fleet.Tenant, error) {
	if c.calls.Add(1) <= c.failures {
		return fleet.Tenant{}, io.ErrUnexpectedEOF
	}
	return c.Catalog.Locate(ctx, tenantID)
}

// TestResolverCatalogRetrySetting: a catalog lookup that fails with a
// transient error is tried again by default, and not at all with a
// negative ResolverConfig.CatalogRetry: the error is returned at once.
func TestResolverCatalogRetrySetting(t *testing.T) {
	ctx := context.Background()
	mc, a, _ := memCatalog(t)
	client := flagstest.Client(t, flags.NewMemoryProvider())
	for _, retry := range []time.Duration{0, -1} {
		cat := &flakyCatalog{Catalog: mc, failures: 2}
		res, err := flags.NewResolver(client, cat, &flags.ResolverConfig{CatalogTTL: -1, CatalogRetry: retry})
		if err != nil {
			t.Fatal(err)
		}
		got, err := res.Resolve(ctx, "t1")
		switch {
		case retry == 0 && (err != nil || got != flags.RouteTo(a, "tenant_1", 0) || cat.calls.Load() != 3):
			t.Errorf("default CatalogRetry, two lost connections: %v, %v after %d lookups; want the catalog's route after 3", got, err, cat.calls.Load())
		case retry < 0 && (!errors.Is(err, io.ErrUnexpectedEOF) || cat.calls.Load() != 1):
			t.Errorf("CatalogRetry %s, a lost connection: %v after %d lookups; want that error after 1", retry, err, cat.calls.Load())
		}
	}
}
