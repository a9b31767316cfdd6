package localpg_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

func TestPasswordAuthIsReal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, &localpg.Config{Name: "auth", Password: "s3cret pw'"})

	conn, err := pgx.Connect(ctx, inst.ConnString("postgres"))
	if err != nil {
		t.Fatalf("connect with the password: %v", err)
	}
	defer conn.Close(ctx)
	var walLevel, slots string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level'), current_setting('max_replication_slots')").Scan(&walLevel, &slots); err != nil {
		t.Fatal(err)
	}
	if walLevel != "logical" || slots != "64" {
		t.Errorf("wal_level=%s max_replication_slots=%s, want logical and 64", walLevel, slots)
	}
	for _, pw := range []string{"wrong", ""} {
		if c, err := pgx.Connect(ctx, inst.ConnStringAs(localpg.SuperuserDefault, pw, "postgres")); err == nil {
			c.Close(ctx)
			t.Errorf("connected over TCP with password %q: auth is not enforced", pw)
		}
	}
	for _, printed := range []string{inst.String(), localpg.Redact(inst.ConnString("db"))} {
		if strings.Contains(printed, "s3cret") {
			t.Errorf("printed form shows the password: %s", printed)
		}
	}
}

func TestSettingsAndDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, &localpg.Config{Settings: map[string]string{"work_mem": "7MB", "application_name": "it's"}})
	const db = `Tenant "Ünïcode" db`
	localpgtest.CreateDatabase(t, inst, db)
	conn, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var workMem, name string
	if err := conn.QueryRow(ctx, "SELECT current_setting('work_mem'), current_database()").Scan(&workMem, &name); err != nil {
		t.Fatal(err)
	}
	if workMem != "7MB" || name != db {
		t.Errorf("work_mem=%s database=%q", workMem, name)
	}
	if err := inst.CreateDatabase(ctx, db); err == nil {
		t.Error("creating an existing database succeeded")
	}
}

func TestRestartKeepsDataAndPort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	execSQL(t, inst, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	port := inst.Port()
	if err := inst.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if inst.Port() != port {
		t.Errorf("port changed from %d to %d", port, inst.Port())
	}
	if got := count(t, inst, "SELECT count(*) FROM kept WHERE v = 42"); got != 1 {
		t.Errorf("after restart: %d rows, want 1", got)
	}
	if err := inst.Stop(); err != nil {
		t.Fatal(err)
	}
	if inst.Running() || dials(inst.Port()) {
		t.Fatal("still running after Stop")
	}
	if err := inst.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, inst, "SELECT count(*) FROM kept"); got != 1 {
		t.Errorf("after stop and restart: %d rows, want 1", got)
	}
}

func TestKillThenRecover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	execSQL(t, inst, "CREATE TABLE acked (v int); INSERT INTO acked SELECT generate_series(1, 1000)")
	// An open session whose backend must die with the postmaster.
	idle, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(ctx)
	if err := inst.Kill(); err != nil {
		t.Fatal(err)
	}
	if inst.Running() {
		t.Fatal("Running after Kill")
	}
	if !errors.Is(inst.Kill(), localpg.ErrNotRunning) {
		t.Error("Kill of a killed instance: want ErrNotRunning")
	}
	// The backends got SIGKILL with the postmaster; give the kernel a
	// moment to close their sockets.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := idle.Exec(ctx, "SELECT 1"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a session survived the kill")
		}
	}
	if err := inst.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, inst, "SELECT count(*) FROM acked"); got != 1000 {
		t.Errorf("after crash recovery: %d rows, want 1000", got)
	}
	if !strings.Contains(inst.Log(), "not properly shut down") {
		t.Error("server log shows no crash recovery")
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	inst, err := localpg.Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir, port := inst.Dir(), inst.Port()
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := inst.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s still there: %v", dir, err)
	}
	if dials(port) {
		t.Errorf("port %d still accepts connections", port)
	}
	if err := inst.Restart(context.Background()); err == nil {
		t.Error("Restart after Close succeeded")
	}
}

func TestBadConfigChangesNothing(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	cases := []struct {
		name string
		cfg  localpg.Config
		want string
	}{
		{"port", localpg.Config{Port: 70000}, "Port 70000"},
		{"setting name", localpg.Config{Settings: map[string]string{"x; drop": "1"}}, `Settings key "x; drop"`},
		{"setting value", localpg.Config{Settings: map[string]string{"work_mem": "1MB\nfsync=on"}}, "line break"},
		{"bin dir", localpg.Config{BinDir: base}, "apt-get install postgresql"},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, struct {
			name string
			cfg  localpg.Config
			want string
		}{"os user", localpg.Config{OSUser: "no-such-user-here"}, `system user "no-such-user-here" does not exist`}, struct {
			name string
			cfg  localpg.Config
			want string
		}{"private base dir", localpg.Config{}, "cannot enter"})
	}
	for _, c := range cases {
		c.cfg.BaseDir = base
		inst, err := localpg.Start(context.Background(), &c.cfg)
		if err == nil {
			inst.Close()
			t.Errorf("%s: Start succeeded", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.want)
		}
	}
	if _, err := localpg.Start(context.Background(), &localpg.Config{BinDir: base, BaseDir: base}); !errors.Is(err, localpg.ErrBinariesNotFound) {
		t.Errorf("missing binaries: %v, want ErrBinariesNotFound", err)
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 0 {
		t.Errorf("refused starts left %d entries in %s", len(entries), base)
	}
}

func TestFindBinDir(t *testing.T) {
	dir, err := localpg.FindBinDir("")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"initdb", "postgres", "pg_ctl", "pg_dump", "pg_restore", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func execSQL(t *testing.T, inst *localpg.Instance, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, inst *localpg.Instance, sql string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func dials(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(localpg.Host, itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// A caller that changes the defaults it was given changes them for
// itself only, never for the next instance.
func TestDefaultSettingsAreTheCallersCopy(t *testing.T) {
	t.Parallel()
	mine := localpg.DefaultSettings()
	if mine["wal_level"] != "logical" {
		t.Fatalf("DefaultSettings wal_level = %q, want logical", mine["wal_level"])
	}
	mine["wal_level"] = "minimal"
	delete(mine, "max_slot_wal_keep_size")
	again := localpg.DefaultSettings()
	if again["wal_level"] != "logical" || again["max_slot_wal_keep_size"] != "16GB" {
		t.Errorf("DefaultSettings after a caller changed its copy: wal_level %q, max_slot_wal_keep_size %q", again["wal_level"], again["max_slot_wal_keep_size"])
	}
}
