// Package pgbouncertest runs a throwaway PgBouncer (the installed
// pgbouncer, Debian's package) for tests: transaction pooling, trust
// authentication on 127.0.0.1, its [databases] entries in a file of their
// own that pgbouncer.ini %includes, as a Follower expects. Everything it
// starts is stopped in tb.Cleanup, and PgBouncer's log is printed when the
// test failed.
package pgbouncertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
)

// Config configures a PgBouncer; nil means defaults.
type Config struct {
	// Databases are the include file's first entries: PgBouncer
	// database name → connection string ("host=127.0.0.1 port=5432
	// dbname=acme"). Default: none.
	Databases map[string]string
	// PoolMode is pool_mode. Default "transaction".
	PoolMode string
	// Settings are added to the [pgbouncer] section, such as
	// "default_pool_size": "4". Default: none.
	Settings map[string]string
}

// PgBouncer is a running PgBouncer.
type PgBouncer struct {
	// Port is where it listens, on 127.0.0.1.
	Port int
	// Admin is a connection string to its admin console, as the
	// superuser "postgres" (an admin_user).
	Admin string
	// File is the include file that holds its [databases] entries.
	File string
	// Dir holds its configuration and log.
	Dir string

	bin    string
	cred   *syscall.Credential // nil: run as this process's user
	cmd    *exec.Cmd           // nil when stopped
	exited chan struct{}
}

// ClientURL is a connection string to db through PgBouncer, as the
// superuser, for pgx (simple protocol, which transaction pooling needs
// without prepared-statement support).
func (p *PgBouncer) ClientURL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&default_query_exec_mode=simple_protocol",
		localpg.SuperuserDefault, p.Port, db)
}

// Entry is a [databases] entry pointing at db on inst, as Databases
// takes it.
func Entry(inst *localpg.Instance, db string) string {
	return fmt.Sprintf("host=%s port=%d dbname=%s", localpg.Host, inst.Port(), db)
}

// Start runs PgBouncer, or fails the test. pgbouncer refuses to run as
// root, so when the test runs as root it runs as localpg.OSUserDefault,
// and its directory belongs to that user.
func Start(tb testing.TB, cfg *Config) *PgBouncer {
	tb.Helper()
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.PoolMode == "" {
		c.PoolMode = "transaction"
	}
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/pgbouncer")
	}
	if err != nil {
		tb.Fatalf("pgbouncertest: pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	p := &PgBouncer{Dir: dir, File: filepath.Join(dir, "databases.ini"), Port: freePort(tb)}
	p.Admin = fmt.Sprintf("postgres://%s@127.0.0.1:%d/pgbouncer?sslmode=disable", localpg.SuperuserDefault, p.Port)

	var dbs strings.Builder
	dbs.WriteString("[databases]\n")
	for _, name := range sortedKeys(c.Databases) {
		fmt.Fprintf(&dbs, "%s = %s\n", name, c.Databases[name])
	}
	var settings strings.Builder
	for _, k := range sortedKeys(c.Settings) {
		fmt.Fprintf(&settings, "%s = %s\n", k, c.Settings[k])
	}
	ini := fmt.Sprintf(`[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = %s
pool_mode = %s
logfile = %s
%s
%%include %s
`, p.Port, filepath.Join(dir, "users.txt"), localpg.SuperuserDefault, c.PoolMode,
		filepath.Join(dir, "pgbouncer.log"), settings.String(), p.File)
	write(tb, filepath.Join(dir, "users.txt"), fmt.Sprintf("%q \"\"\n", localpg.SuperuserDefault))
	write(tb, p.File, dbs.String())
	write(tb, filepath.Join(dir, "pgbouncer.ini"), ini)

	p.bin = bin
	if os.Geteuid() == 0 {
		u, err := user.Lookup(localpg.OSUserDefault)
		if err != nil {
			tb.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, f := range []string{dir, filepath.Join(dir, "users.txt"), p.File, filepath.Join(dir, "pgbouncer.ini")} {
			if err := os.Chown(f, uid, gid); err != nil {
				tb.Fatal(err)
			}
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			stdout, _ := os.ReadFile(filepath.Join(dir, "stdout"))
			tb.Logf("pgbouncertest: pgbouncer log:\n%s%s", log, stdout)
		}
	})
	p.start(tb)
	return p
}

// Restart stops PgBouncer (its clients and admin sessions are cut) and
// starts it again on the same port with the same files, or fails the
// test.
func (p *PgBouncer) Restart(tb testing.TB) {
	tb.Helper()
	p.stop()
	p.start(tb)
}

// start runs pgbouncer and waits until it listens.
func (p *PgBouncer) start(tb testing.TB) {
	tb.Helper()
	cmd := exec.Command(p.bin, filepath.Join(p.Dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	out, err := os.OpenFile(filepath.Join(p.Dir, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("pgbouncertest: start pgbouncer: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port)); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			tb.Fatal("pgbouncertest: pgbouncer exited at start")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatal("pgbouncertest: pgbouncer did not start listening")
		}
	}
}

// stop ends pgbouncer, if it runs, and waits until it has.
func (p *PgBouncer) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // immediate shutdown
	<-p.exited
	p.cmd = nil
}

// Console connects to the admin console, or fails the test; the
// connection is closed in tb.Cleanup.
func (p *PgBouncer) Console(tb testing.TB) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(p.Admin)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("pgbouncertest: connect to the admin console: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Database is a row of SHOW DATABASES.
type Database struct {
	Host   string
	Port   int
	DBName string // the server database ("database" column)
	Paused bool
}

// Databases reads SHOW DATABASES by column name (columns differ between
// versions), or fails the test.
func Databases(tb testing.TB, console *pgx.Conn) map[string]Database {
	tb.Helper()
	out := map[string]Database{}
	for _, row := range show(tb, console, "SHOW DATABASES") {
		port, _ := strconv.Atoi(row["port"])
		out[row["name"]] = Database{Host: row["host"], Port: port, DBName: row["database"], Paused: row["paused"] == "1"}
	}
	return out
}

// Pool sums SHOW POOLS' counters of a database over its pools.
type Pool struct {
	ClientsActive, ClientsWaiting, ServersActive, ServersIdle int
}

// Pools reads SHOW POOLS for db, or fails the test.
func Pools(tb testing.TB, console *pgx.Conn, db string) Pool {
	tb.Helper()
	var p Pool
	for _, row := range show(tb, console, "SHOW POOLS") {
		if row["database"] != db {
			continue
		}
		n := func(col string) int { v, _ := strconv.Atoi(row[col]); return v }
		p.ClientsActive += n("cl_active")
		p.ClientsWaiting += n("cl_waiting")
		p.ServersActive += n("sv_active")
		p.ServersIdle += n("sv_idle")
	}
	return p
}

func show(tb testing.TB, console *pgx.Conn, cmd string) []map[string]string {
	tb.Helper()
	rows, err := console.Query(context.Background(), cmd)
	if err != nil {
		tb.Fatalf("pgbouncertest: %s: %v", cmd, err)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			tb.Fatalf("pgbouncertest: %s: %v", cmd, err)
		}
		row := map[string]string{}
		for i, fd := range rows.FieldDescriptions() {
			if vals[i] != nil {
				row[fd.Name] = fmt.Sprint(vals[i])
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("pgbouncertest: %s: %v", cmd, err)
	}
	return out
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func write(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
