package fleetjobs_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// startJobFleet starts a fleet of its own (a control database with its
// own River leader) and a pool on its control database with River's
// tables migrated; both end with t.
func startJobFleet(t *testing.T, cfg *cutovertest.FleetConfig) (*cutovertest.Fleet, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	pool, err := pgxpool.New(ctx, f.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := fleetjobs.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	return f, pool
}

// assertWrites stops the application writing to tenant and checks that
// every write it was told had committed is in the tenant's database, as
// connect reaches it, and that it saw no error.
func assertWrites(t *testing.T, w *cutovertest.Workload, tenant string, connect func(ctx context.Context, db string) (*pgx.Conn, error)) {
	t.Helper()
	ctx := context.Background()
	waitForAcks(t, w, 10)
	stats := w.Stop()
	conn, err := connect(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := w.Missing(ctx, conn)
	conn.Close(ctx)
	if err != nil || missing != 0 || stats.Errors != 0 {
		t.Errorf("%s: %d of %d acknowledged writes missing (%v), %d application errors (first %v)",
			tenant, missing, stats.Acknowledged, err, stats.Errors, stats.FirstError)
	}
}
