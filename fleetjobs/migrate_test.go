package fleetjobs_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/daisychain-db/daisychain/fleetjobs"
)

// TestMigrateConcurrently: worker processes starting at once each call
// Migrate; under the migration lock every call succeeds and each of
// River's versions is applied once. A schema name River would refuse is
// refused first, creating nothing.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	s := fleetFor(t)
	ctx := context.Background()
	const schema = "jobs_at_once"
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fleetjobs.Migrate(ctx, s.pool, &fleetjobs.MigrateOpts{Schema: schema})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(s.pool), &rivermigrate.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	var applied, distinct int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM jobs_at_once.river_migration`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if want := len(migrator.AllVersions()); applied != want || distinct != want {
		t.Errorf("%s.river_migration has %d rows of %d versions, want each of River's %d once", schema, applied, distinct, want)
	}

	err = fleetjobs.Migrate(ctx, s.pool, &fleetjobs.MigrateOpts{Schema: `odd"name`})
	if err == nil {
		t.Fatal(`Migrate into schema odd"name: no error, want a refusal naming MigrateOpts.Schema`)
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'odd"name')`).Scan(&exists); err != nil || exists {
		t.Errorf(`schema odd"name exists: %v (%v), want nothing created`, exists, err)
	}
}
