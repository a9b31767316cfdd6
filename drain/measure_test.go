package drain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// createTables creates n small tables in the database.
func createTables(t *testing.T, inst *localpg.Instance, db string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := range n {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE t%d (id bigint PRIMARY KEY, v text);
			INSERT INTO t%d SELECT g, repeat('x', 200) FROM generate_series(1, 500) g`, i, i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg1 := localpgtest.Start(t, &localpg.Config{Name: "pg1", Password: "pw1"})
	pg2 := localpgtest.Start(t, &localpg.Config{Name: "pg2", Password: "pw2"})
	cat := fleet.NewMemoryCatalog()
	register := func(id string, inst *localpg.Instance) {
		t.Helper()
		if err := cat.RegisterInstance(ctx, fleet.Instance{ID: id, Admin: inst.ConnString("postgres"),
			Endpoint: fleet.Endpoint{Host: localpg.Host, Port: inst.Port()}, Limits: fleet.Limits{MaxFiles: 100000}}); err != nil {
			t.Fatal(err)
		}
	}
	register("pg1", pg1)
	register("pg2", pg2)
	// A database that is not a catalogued tenant is measured, and
	// counts, but is no tenant to move.
	localpgtest.CreateDatabase(t, pg1, "not_a_tenant")
	tables := map[string]int{"acme": 3, "globex": 0, "initech": 5}
	for id, n := range tables {
		inst, instID := pg1, "pg1"
		if id == "initech" {
			inst, instID = pg2, "pg2"
		}
		db := "db_" + id
		localpgtest.CreateDatabase(t, inst, db)
		createTables(t, inst, db, n)
		if err := cat.AddTenant(ctx, fleet.Tenant{ID: id, Database: db, Instance: instID}); err != nil {
			t.Fatal(err)
		}
	}

	snap, err := drain.Measure(ctx, cat, &drain.MeasureOpts{Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	byID := map[string]drain.TenantUsage{}
	for _, iu := range snap.Instances {
		for _, u := range iu.Tenants {
			got = append(got, iu.Instance.ID+"/"+u.ID+"/"+u.Database)
			byID[u.ID] = u
		}
	}
	if want := "pg1/acme/db_acme pg1/globex/db_globex pg2/initech/db_initech"; strings.Join(got, " ") != want {
		t.Fatalf("snapshot holds %v, want %s", got, want)
	}
	if l := snap.Instances[0].Instance.Limits; l.MaxFiles != 100000 {
		t.Errorf("pg1 limits %+v, want the catalog's", l)
	}
	for id := range tables {
		if u := byID[id]; u.Files <= 0 || u.Bytes <= 0 {
			t.Errorf("%s: %+v, want some files and bytes", id, u)
		}
	}
	if o := snap.Instances[0].Other; len(o) != 1 || o[0].Database != "not_a_tenant" || o[0].Files <= 0 {
		t.Errorf("pg1's other databases: %+v, want not_a_tenant, measured", o)
	}
	// Each table brings at least heap, TOAST, TOAST index and primary key.
	if a, g := byID["acme"], byID["globex"]; a.Files < g.Files+3*4 || a.Bytes <= g.Bytes {
		t.Errorf("acme (3 tables) %d files %d bytes, globex (none) %d files %d bytes", a.Files, a.Bytes, g.Files, g.Bytes)
	}

	// The snapshot plans: drain pg1 to two databases (not_a_tenant
	// stays), and the smaller tenant, globex, goes to pg2.
	p, err := drain.PlanDrain(snap, "pg1", drain.Threshold{MaxTenants: 2}, nil)
	if err != nil || len(p.Moves) != 1 || p.Moves[0].Tenant != "globex" || p.Moves[0].To != "pg2" {
		t.Fatalf("plan from the measured snapshot: %v, %v", p, err)
	}

	// An instance that cannot be reached fails the measure, naming it,
	// without its password.
	if err := cat.RegisterInstance(ctx, fleet.Instance{ID: "pg3", Admin: "postgres://postgres:sekrit@127.0.0.1:1/postgres",
		Endpoint: fleet.Endpoint{Host: localpg.Host, Port: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := cat.AddTenant(ctx, fleet.Tenant{ID: "hooli", Database: "db_hooli", Instance: "pg3"}); err != nil {
		t.Fatal(err)
	}
	snap, err = drain.Measure(ctx, cat, &drain.MeasureOpts{Interval: -1})
	if err == nil || snap != nil || !strings.Contains(err.Error(), "pg3") || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("Measure with an unreachable instance: %v, %v", snap, err)
	}
	// Measuring only the instances a plan involves does not touch it.
	snap, err = drain.Measure(ctx, cat, &drain.MeasureOpts{Interval: -1, Instances: []string{"pg2"}})
	if err != nil || len(snap.Instances) != 1 || snap.Instances[0].Instance.ID != "pg2" || len(snap.Instances[0].Tenants) != 1 {
		t.Errorf("Measure of pg2 only: %+v, %v", snap, err)
	}
	snap, err = drain.Measure(ctx, cat, &drain.MeasureOpts{Interval: -1, Instances: []string{"pg2", "pg9"}})
	if !errors.Is(err, drain.ErrInvalid) || !strings.Contains(err.Error(), `"pg9"`) || snap != nil {
		t.Errorf("Measure of an instance not in the catalog: %v, %v", snap, err)
	}
}

// TestMeasureCountsWhatIsOnDisk measures an instance holding two
// catalogued tenants, a copy fenced by a move and awaiting Retire, and a
// database no catalog knows: the instance's totals are every byte and
// relation file on disk, and the server sees one connection.
func TestMeasureCountsWhatIsOnDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := localpgtest.Start(t, &localpg.Config{Password: "pw",
		Settings: map[string]string{"log_connections": "on", "autovacuum": "off"}})
	cat := fleet.NewMemoryCatalog()
	if err := cat.RegisterInstance(ctx, fleet.Instance{ID: "pg", Admin: pg.ConnString("postgres"),
		Endpoint: fleet.Endpoint{Host: localpg.Host, Port: pg.Port()}}); err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"acme", "globex", "acme_moved", "stray"} {
		localpgtest.CreateDatabase(t, pg, db)
	}
	createTables(t, pg, "acme", 3)
	createTables(t, pg, "acme_moved", 4)
	for _, id := range []string{"acme", "globex"} {
		if err := cat.AddTenant(ctx, fleet.Tenant{ID: id, Database: id, Instance: "pg"}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The database fence of a finished move, kept for its rollback
	// period; CHECKPOINT so that the directories hold only live files.
	if _, err := conn.Exec(ctx, "ALTER DATABASE acme_moved WITH ALLOW_CONNECTIONS false; CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	var files, bytes int64
	if err := conn.QueryRow(ctx, `SELECT sum(pg_database_size(oid))::bigint,
		sum((SELECT count(*) FROM pg_ls_dir('base/' || d.oid) f WHERE f ~ '^[0-9]+(_(fsm|vm|init))?(\.[0-9]+)?$'))::bigint
		FROM pg_database d WHERE datname IN ('acme', 'globex', 'acme_moved', 'stray')`).Scan(&bytes, &files); err != nil {
		t.Fatal(err)
	}

	before := strings.Count(pg.Log(), "connection authorized:")
	snap, err := drain.Measure(ctx, cat, &drain.MeasureOpts{Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if opened := strings.Count(pg.Log(), "connection authorized:") - before; opened != 1 {
		t.Errorf("measuring the instance opened %d connections, want 1", opened)
	}
	tot := snap.Instances[0].Totals()
	if tot.Tenants != 4 || tot.Files != files || tot.Bytes != bytes {
		t.Errorf("the instance totals %d databases, %d files, %d bytes; on disk: 4 databases, %d files, %d bytes",
			tot.Tenants, tot.Files, tot.Bytes, files, bytes)
	}
	var other []string
	for _, u := range snap.Instances[0].Other {
		other = append(other, u.Database)
	}
	if strings.Join(other, " ") != "acme_moved stray" {
		t.Errorf("other databases %v, want [acme_moved stray]: the fenced copy and the stray database, never postgres or templates", other)
	}
	// Counting per database cannot see into the fenced copy: refused
	// rather than under-counted.
	snap, err = drain.Measure(ctx, cat, &drain.MeasureOpts{Interval: -1, Files: fleet.FileCountingPerDatabase})
	if !errors.Is(err, fleet.ErrFileListingDenied) || !strings.Contains(err.Error(), "acme_moved") || snap != nil {
		t.Errorf("Measure per database with a fenced copy: %v, %v; want ErrFileListingDenied naming acme_moved", snap, err)
	}
}
