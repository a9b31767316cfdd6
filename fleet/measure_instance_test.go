package fleet_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// connectionsOpened runs fn and returns how many connections the server
// authorized meanwhile, from its log (log_connections).
func connectionsOpened(t *testing.T, inst *localpg.Instance, fn func()) int {
	t.Helper()
	before := strings.Count(inst.Log(), "connection authorized:")
	fn()
	return strings.Count(inst.Log(), "connection authorized:") - before
}

// startMeasured starts an instance that logs each connection and runs
// no autovacuum (which would add map files between a measure and the
// look at the disk that checks it).
func startMeasured(t *testing.T) *localpg.Instance {
	t.Helper()
	return localpgtest.Start(t, &localpg.Config{Password: "pw", Settings: map[string]string{
		"log_connections": "on", "autovacuum": "off", "allow_in_place_tablespaces": "on"}})
}

func exec(t *testing.T, inst *localpg.Instance, db string, sql ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func byName(m *fleet.Measurement) map[string]fleet.Usage {
	out := map[string]fleet.Usage{}
	for _, u := range m.Databases {
		out[u.Database] = u
	}
	return out
}

// TestMeasureInstance measures an instance holding a tenant with tables
// in two tablespaces, an empty one, and a copy fenced by a move: through
// one connection, every database's files agree with its directories on
// disk and with the per-database count, and the fenced copy counts
// against the limits.
func TestMeasureInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := startMeasured(t)
	for _, db := range []string{"acme", "globex", "fenced"} {
		localpgtest.CreateDatabase(t, inst, db)
	}
	exec(t, inst, "postgres", "CREATE TABLESPACE elsewhere LOCATION ''")
	exec(t, inst, "acme",
		`CREATE TABLE a (id bigint PRIMARY KEY, v text); INSERT INTO a SELECT g, repeat('x', 300) FROM generate_series(1, 3000) g`,
		`CREATE TABLE b (id int) TABLESPACE elsewhere; INSERT INTO b SELECT generate_series(1, 1000)`,
		`CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)`,
		`VACUUM a`)
	exec(t, inst, "fenced",
		`CREATE TABLE c (id bigint PRIMARY KEY, v text); INSERT INTO c SELECT g, repeat('y', 500) FROM generate_series(1, 2000) g`)
	// What a move's database fence leaves behind until Retire.
	exec(t, inst, "postgres", "ALTER DATABASE fenced WITH ALLOW_CONNECTIONS false")
	admin := fleet.Instance{ID: "pg", Admin: inst.ConnString("postgres"),
		Endpoint: fleet.Endpoint{Host: localpg.Host, Port: inst.Port()}}

	var m *fleet.Measurement
	var err error
	opened := connectionsOpened(t, inst, func() {
		m, err = fleet.MeasureInstance(ctx, admin, &fleet.UsageOpts{Interval: -1})
	})
	if err != nil {
		t.Fatal(err)
	}
	if opened != 1 || m.Connections != 1 || m.Files != fleet.FileCountingDataDirectory {
		t.Errorf("the server authorized %d connections (Measurement says %d, %s); want 1, listing the data directory",
			opened, m.Connections, m.Files)
	}
	dbs := byName(m)
	for _, name := range []string{"acme", "fenced", "globex", "postgres", "template0", "template1"} {
		u, ok := dbs[name]
		if !ok {
			t.Fatalf("database %s not measured: %+v", name, m.Databases)
		}
		if disk := filesOnDisk(t, inst, name); u.Files != disk || u.FilesUncounted {
			t.Errorf("%s: Files = %d (uncounted %v), but its directories hold %d relation files", name, u.Files, u.FilesUncounted, disk)
		}
		var size int64
		conn, err := inst.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		err = conn.QueryRow(ctx, "SELECT pg_database_size($1)", name).Scan(&size)
		conn.Close(ctx)
		if err != nil || u.Bytes != size {
			t.Errorf("%s: Bytes = %d, pg_database_size %d (%v)", name, u.Bytes, size, err)
		}
	}
	fenced := dbs["fenced"]
	if fenced.AllowsConnections || !fenced.CountsAgainstLimits() || fenced.Files < dbs["globex"].Files+3 {
		t.Errorf("fenced copy measured as %+v: want refusing connections, counted against the limits, its table's files included", fenced)
	}
	if dbs["template1"].CountsAgainstLimits() || dbs["postgres"].CountsAgainstLimits() || !dbs["template1"].Template {
		t.Errorf("templates and postgres count against the limits: %+v %+v", dbs["template1"], dbs["postgres"])
	}
	held := m.Held()
	want := fleet.Held{Databases: 3, Files: dbs["acme"].Files + dbs["globex"].Files + fenced.Files,
		Bytes: dbs["acme"].Bytes + dbs["globex"].Bytes + fenced.Bytes}
	if held.Databases != want.Databases || held.Files != want.Files || held.Bytes != want.Bytes || held.FilesUncounted != nil {
		t.Errorf("Held = %+v, want %+v", held, want)
	}

	t.Run("per database", func(t *testing.T) {
		var pd *fleet.Measurement
		opened := connectionsOpened(t, inst, func() {
			pd, err = fleet.MeasureInstance(ctx, admin, &fleet.UsageOpts{Interval: -1, Files: fleet.FileCountingPerDatabase, Tables: true})
		})
		if err != nil {
			t.Fatal(err)
		}
		// The Admin connection, then postgres, acme and globex: not the
		// templates, and the fenced copy refuses connections.
		if opened != 4 || pd.Connections != 4 {
			t.Errorf("per-database count: the server authorized %d connections (Measurement says %d), want 4", opened, pd.Connections)
		}
		per := byName(pd)
		for _, name := range []string{"acme", "globex", "postgres"} {
			if per[name].Files != dbs[name].Files || per[name].Bytes != dbs[name].Bytes {
				t.Errorf("%s: per database %d files %d bytes, from the data directory %d files %d bytes",
					name, per[name].Files, per[name].Bytes, dbs[name].Files, dbs[name].Bytes)
			}
		}
		if per["acme"].Tables != 3 || per["globex"].Tables != 0 {
			t.Errorf("Tables: acme %d (want 3), globex %d (want 0)", per["acme"].Tables, per["globex"].Tables)
		}
		if f := per["fenced"]; !f.FilesUncounted || f.Files != 0 || f.Bytes != fenced.Bytes {
			t.Errorf("fenced copy counted per database: %+v; want its bytes, and its files marked uncounted", f)
		}
		if h := pd.Held(); len(h.FilesUncounted) != 1 || h.FilesUncounted[0] != "fenced" {
			t.Errorf("Held().FilesUncounted = %v, want [fenced]", h.FilesUncounted)
		}
	})

	t.Run("role that may not list the data directory", func(t *testing.T) {
		exec(t, inst, "postgres", "CREATE ROLE measurer LOGIN PASSWORD 'measurer-pw'")
		limited := admin
		limited.Admin = inst.ConnStringAs("measurer", "measurer-pw", "postgres")
		auto, err := fleet.MeasureInstance(ctx, limited, &fleet.UsageOpts{Interval: -1})
		if err != nil || auto.Files != fleet.FileCountingPerDatabase || byName(auto)["acme"].Files != dbs["acme"].Files {
			t.Fatalf("without pg_ls_dir, the default falls back to counting per database: %+v, %v", auto, err)
		}
		_, err = fleet.MeasureInstance(ctx, limited, &fleet.UsageOpts{Interval: -1, Files: fleet.FileCountingDataDirectory})
		if !errors.Is(err, fleet.ErrFileListingDenied) || !strings.Contains(err.Error(), "GRANT EXECUTE ON FUNCTION pg_ls_dir") ||
			strings.Contains(err.Error(), "measurer-pw") {
			t.Errorf("data directory asked for without the privilege: %v", err)
		}
		exec(t, inst, "postgres", "GRANT EXECUTE ON FUNCTION pg_ls_dir(text, boolean, boolean) TO measurer")
		var granted *fleet.Measurement
		opened := connectionsOpened(t, inst, func() {
			granted, err = fleet.MeasureInstance(ctx, limited, &fleet.UsageOpts{Interval: -1, Files: fleet.FileCountingDataDirectory})
		})
		if err != nil || opened != 1 {
			t.Fatalf("with EXECUTE on pg_ls_dir: %v, %d connections", err, opened)
		}
		// Connecting to a database writes its relcache init file, so
		// compare with a superuser's measure taken now.
		super, err := fleet.MeasureInstance(ctx, admin, &fleet.UsageOpts{Interval: -1})
		if err != nil {
			t.Fatal(err)
		}
		dbs := byName(super)
		for name, u := range byName(granted) {
			if u.Files != dbs[name].Files || u.Bytes != dbs[name].Bytes {
				t.Errorf("%s: %d files %d bytes as a granted role, %d files %d bytes as a superuser",
					name, u.Files, u.Bytes, dbs[name].Files, dbs[name].Bytes)
			}
		}
	})

	t.Run("bad options", func(t *testing.T) {
		for _, o := range []fleet.UsageOpts{{Files: "du"}, {Concurrency: -1}} {
			opened := connectionsOpened(t, inst, func() {
				_, err = fleet.MeasureInstance(ctx, admin, &o)
			})
			if !errors.Is(err, fleet.ErrInvalid) || opened != 0 {
				t.Errorf("MeasureInstance(%+v): %v after %d connections; want ErrInvalid before connecting", o, err, opened)
			}
		}
		_, err := fleet.MeasureUsage(ctx, admin, &fleet.UsageOpts{Interval: -1, Databases: []string{"acme", "initech"}})
		if !errors.Is(err, fleet.ErrDatabaseNotFound) || !strings.Contains(err.Error(), `"initech"`) {
			t.Errorf("MeasureUsage of a database not on the instance: %v", err)
		}
	})
}
