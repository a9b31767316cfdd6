package drain_test

import (
	"context"
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
	// A database that is not a catalogued tenant is not measured.
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
	for id, n := range tables {
		if u := byID[id]; u.Tables != int64(n) || u.Files <= 0 || u.Bytes <= 0 {
			t.Errorf("%s: %+v, want %d tables and some files and bytes", id, u, n)
		}
	}
	// Each table brings at least heap, TOAST, TOAST index and primary key.
	if a, g := byID["acme"], byID["globex"]; a.Files < g.Files+3*4 || a.Bytes <= g.Bytes {
		t.Errorf("acme (3 tables) %d files %d bytes, globex (none) %d files %d bytes", a.Files, a.Bytes, g.Files, g.Bytes)
	}

	// The snapshot plans: drain pg1 to one tenant, and the smaller one,
	// globex, goes to pg2.
	p, err := drain.PlanDrain(snap, "pg1", drain.Threshold{MaxTenants: 1}, nil)
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
}
