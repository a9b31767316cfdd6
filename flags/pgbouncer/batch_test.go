package pgbouncer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/pgbouncer"
	"github.com/daisychain-db/daisychain/flags/pgbouncer/pgbouncertest"
	"github.com/daisychain-db/daisychain/fleet"
)

// TestBatchSwitchIsOneReload: a batch publish of 1,300 routes (a
// Convert's switch) is followed with one file write and one RELOAD, and
// every database is paused, then resumed at its new endpoint. PgBouncer
// never connects to the endpoints here (no client does), so they need no
// server.
func TestBatchSwitchIsOneReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 1300
	tenants := make([]string, n)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("t%04d", i)
	}
	m := newMemoryRoutes(t, 15432, 25432, tenants...)
	pgb := pgbouncertest.Start(t, nil)
	f, err := pgbouncer.New(&pgbouncer.Config{Resolver: m.resolver, Admin: pgb.Admin, File: pgb.File, Tenants: tenants})
	must(t, err)
	events := run(t, f)
	waitFor(t, events, pgbouncer.EventSynced)
	reloadsBefore := reloads(t, pgb)

	batch := func(inst fleet.Instance, epoch int64, paused bool) {
		routes := make([]flags.TenantRoute, n)
		for i, tenant := range tenants {
			r := flags.RouteTo(inst, tenant, epoch)
			r.Paused = paused
			routes[i] = flags.TenantRoute{Tenant: tenant, Route: r}
		}
		must(t, m.routes.PublishMany(ctx, routes))
	}
	batch(m.a, 1, true)
	held := map[string]bool{}
	for len(held) < n {
		for _, db := range waitFor(t, events, pgbouncer.EventPaused).Databases {
			held[db] = true
		}
	}
	batch(m.b, 2, false)
	resumed := map[string]bool{}
	reloaded := 0
	for len(resumed) < n {
		e := <-events
		switch e.Kind {
		case pgbouncer.EventFailed:
			t.Fatalf("round failed: %v", e.Err)
		case pgbouncer.EventReloaded:
			reloaded++
		case pgbouncer.EventResumed:
			for _, db := range e.Databases {
				resumed[db] = true
			}
		}
	}
	must(t, f.Sync(ctx)) // nothing left to do: no further RELOAD
	if got := reloads(t, pgb) - reloadsBefore; got != 1 || reloaded != 1 {
		t.Errorf("the batch switch cost %d RELOADs (%d EventReloaded), want 1", got, reloaded)
	}
	dbs := pgbouncertest.Databases(t, pgb.Console(t))
	wrong := 0
	for _, tenant := range tenants {
		if d := dbs[tenant]; d.Port != m.b.Endpoint.Port || d.Paused {
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d entries not at pg-b's port or still paused", wrong, n)
	}
}

// reloads counts the RELOAD commands PgBouncer logged.
func reloads(t *testing.T, pgb *pgbouncertest.PgBouncer) int {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(pgb.Dir, "pgbouncer.log"))
	must(t, err)
	return strings.Count(string(log), "RELOAD command issued")
}
