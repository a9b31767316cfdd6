package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// relationFile matches the names of relation files in a database's
// directory: filenode, optional fork, optional segment number.
var relationFile = regexp.MustCompile(`^[0-9]+(_(fsm|vm|init))?(\.[0-9]+)?$`)

// filesOnDisk counts the relation files of the database: in base/<oid>
// and in <oid> under every tablespace's directory for this server
// version, after a checkpoint.
func filesOnDisk(t *testing.T, inst *localpg.Instance, db string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var oid uint32
	// Dropped relations leave empty files until the next checkpoint.
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT oid FROM pg_database WHERE datname = $1", db).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	dirs := []string{filepath.Join(inst.DataDir(), "base", fmt.Sprint(oid))}
	spaces, err := filepath.Glob(filepath.Join(inst.DataDir(), "pg_tblspc", "*", "PG_*", fmt.Sprint(oid)))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, dir := range append(dirs, spaces...) {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			if relationFile.MatchString(e.Name()) {
				n++
			}
		}
	}
	return n
}

func TestMeasureUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, &localpg.Config{Password: "pw"})
	const tables = 12
	for _, db := range []string{"busy", "idle", "control"} {
		localpgtest.CreateDatabase(t, inst, db)
	}
	conn, err := inst.Connect(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := range tables {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE t%d (id bigint PRIMARY KEY, v text);
			INSERT INTO t%d SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g;
			DELETE FROM t%d WHERE id %% 3 = 0;`, i, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
		CREATE TABLE events (at date NOT NULL, v int) PARTITION BY RANGE (at);
		CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
		CREATE SEQUENCE free_standing;`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "VACUUM"); err != nil {
		t.Fatal(err)
	}

	all, err := fleet.DiscoverDatabases(ctx, conn, nil)
	if err != nil || !slices.Equal(all, []string{"busy", "control", "idle"}) {
		t.Fatalf("DiscoverDatabases without options = %v, %v; want [busy control idle]", all, err)
	}

	// Keep "busy" busy while activity is sampled.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := conn.Exec(ctx, "UPDATE t0 SET v = v WHERE id = 1"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	admin := fleet.Instance{ID: "pg", Admin: inst.ConnString("postgres"),
		Endpoint: fleet.Endpoint{Host: localpg.Host, Port: inst.Port()}}
	usage, err := fleet.MeasureUsage(ctx, admin, &fleet.UsageOpts{
		Interval: 2500 * time.Millisecond,
		Tables:   true,
		Discover: &fleet.DiscoverOpts{Exclude: []string{"control"}},
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(usage))
	for i, u := range usage {
		names[i] = u.Database
	}
	if !slices.Equal(names, []string{"busy", "idle"}) {
		t.Fatalf("measured databases %v, want [busy idle] (templates, postgres and the excluded control database left out)", names)
	}
	busy, idle := usage[0], usage[1]
	if want := int64(tables + 3); busy.Tables != want { // 12 + scratch + events + events_2026
		t.Errorf("busy: Tables = %d, want %d", busy.Tables, want)
	}
	if idle.Tables != 0 {
		t.Errorf("idle: Tables = %d, want 0", idle.Tables)
	}
	for _, u := range usage {
		if disk := filesOnDisk(t, inst, u.Database); u.Files != disk {
			t.Errorf("%s: Files = %d, but the database's directory holds %d relation files", u.Database, u.Files, disk)
		}
	}
	// Each table adds heap, toast, toast index and primary key, plus
	// the free space and visibility maps of its vacuumed heap.
	if busy.Files < idle.Files+tables*6 {
		t.Errorf("busy has %d files, idle %d: want at least %d more", busy.Files, idle.Files, tables*6)
	}
	if busy.Bytes <= idle.Bytes {
		t.Errorf("busy Bytes %d <= idle Bytes %d", busy.Bytes, idle.Bytes)
	}
	if busy.TPS < 10 || idle.TPS > busy.TPS/10 {
		t.Errorf("TPS busy %.1f idle %.1f: want busy >= 10 and idle under a tenth of it", busy.TPS, idle.TPS)
	}
}

func TestMeasureUsageBadAdmin(t *testing.T) {
	_, err := fleet.MeasureUsage(context.Background(), fleet.Instance{ID: "x", Admin: "postgres://u:sekrit@[::1"}, nil)
	if err == nil || regexp.MustCompile("sekrit").MatchString(err.Error()) {
		t.Fatalf("MeasureUsage with a malformed Admin: %v", err)
	}
}
