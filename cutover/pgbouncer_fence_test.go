package cutover_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// startPgBouncer runs Debian's pgbouncer in transaction pooling in front of
// db on inst, and returns its port.
func startPgBouncer(t *testing.T, inst *localpg.Instance, db string) int {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/pgbouncer")
	}
	if err != nil {
		t.Fatalf("pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ini := fmt.Sprintf(`[databases]
%s = host=127.0.0.1 port=%d dbname=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = postgres
pool_mode = transaction
logfile = %s
`, db, inst.Port(), db, port, filepath.Join(dir, "users.txt"), filepath.Join(dir, "pgbouncer.log"))
	must(t, os.WriteFile(filepath.Join(dir, "users.txt"), []byte(`"postgres" ""`+"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o644))
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 { // pgbouncer refuses to run as root
		u, err := user.Lookup(localpg.OSUserDefault)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		must(t, os.Chown(dir, uid, gid))
		must(t, os.Chmod(dir, 0o755))
	}
	out, err := os.Create(filepath.Join(dir, "stdout"))
	must(t, err)
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Logf("pgbouncer log:\n%s", log)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatal("pgbouncer did not start listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPgBouncerFenceHoldsClients: while the fence is held, a client of
// PgBouncer waits instead of failing, and nothing commits; after Release
// its statement completes without an error.
func TestPgBouncerFenceHoldsClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	const db = "tenant"
	localpgtest.CreateDatabase(t, inst, db)
	direct, err := inst.Connect(ctx, db)
	must(t, err)
	defer direct.Close(ctx)
	_, err = direct.Exec(ctx, "CREATE TABLE w (v int)")
	must(t, err)

	port := startPgBouncer(t, inst, db)
	clientURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&default_query_exec_mode=simple_protocol", port, db)
	client, err := pgx.Connect(ctx, clientURL)
	must(t, err)
	defer client.Close(ctx)
	_, err = client.Exec(ctx, "INSERT INTO w VALUES (1)")
	must(t, err)

	fence := cutover.PgBouncerFence{Admin: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pgbouncer?sslmode=disable", port)}
	target := cutover.FenceTarget{Tenant: fleet.Tenant{ID: "t", Database: db, Instance: "src"}}
	must(t, fence.Hold(ctx, target))
	must(t, fence.Hold(ctx, target)) // idempotent

	held := make(chan error, 1)
	go func() {
		_, err := client.Exec(ctx, "INSERT INTO w VALUES (2)")
		held <- err
	}()
	// PgBouncer counts the client as waiting: its statement is held.
	admin, err := pgx.ParseConfig(fence.Admin)
	must(t, err)
	admin.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	console, err := pgx.ConnectConfig(ctx, admin)
	must(t, err)
	defer console.Close(ctx)
	for deadline := time.Now().Add(30 * time.Second); waitingClients(t, console, db) == 0; {
		select {
		case err := <-held:
			t.Fatalf("a client statement completed while the fence was held: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("PgBouncer never counted the client as waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-held:
		t.Fatalf("a client statement completed while the fence was held: %v", err)
	default:
	}
	var n int
	must(t, direct.QueryRow(ctx, "SELECT count(*) FROM w").Scan(&n))
	if n != 1 {
		t.Errorf("%d rows while held, want 1", n)
	}
	must(t, fence.Release(ctx, target))
	must(t, fence.Release(ctx, target)) // idempotent
	if err := <-held; err != nil {
		t.Errorf("held statement failed after Release: %v", err)
	}
	must(t, direct.QueryRow(ctx, "SELECT count(*) FROM w").Scan(&n))
	if n != 2 {
		t.Errorf("%d rows after Release, want 2", n)
	}

	unknown := cutover.FenceTarget{Tenant: fleet.Tenant{ID: "x", Database: "not_in_pgbouncer"}}
	if err := fence.Hold(ctx, unknown); err == nil {
		t.Error("Hold of a database PgBouncer does not know succeeded")
	}
	// A set with a database PgBouncer lacks is refused before any PAUSE
	// goes out: the known database still serves.
	if err := fence.HoldAll(ctx, []cutover.FenceTarget{target, unknown}); err == nil || !strings.Contains(err.Error(), "not_in_pgbouncer") {
		t.Errorf("HoldAll of a set with a database PgBouncer lacks: %v, want an error naming it", err)
	}
	if pgBouncerPaused(t, fence.Admin, db) {
		t.Error("HoldAll paused a database before finding that PgBouncer lacks another of the set")
		must(t, fence.Release(ctx, target))
	}
}

// TestPgBouncerFenceCheckedBeforeTheWindow: a move whose PgBouncer lacks
// the tenant's database rolls back before its window opens (the run
// connects to the admin console and checks it first), so the routes are
// never paused for it.
func TestPgBouncerFenceCheckedBeforeTheWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	src := f.Instances["pg-a"]
	localpgtest.CreateDatabase(t, src, "other")
	port := startPgBouncer(t, src, "other")
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second, Fences: []cutover.Fence{cutover.DatabaseFence{},
		cutover.PgBouncerFence{Admin: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pgbouncer?sslmode=disable", port)}}})
	must(t, err)
	rep, err := mover.Move(ctx, cutover.Request{ID: "no-pgbouncer-db", Tenant: "acme", Target: "pg-b"})
	if !errors.Is(err, cutover.ErrRolledBack) || !strings.Contains(err.Error(), `"acme"`) {
		t.Fatalf("move: %v, want a rollback naming the database PgBouncer lacks\n%s", err, rep)
	}
	for _, s := range rep.Steps {
		if s.Step == cutover.StepPause || s.Step == cutover.StepFence {
			t.Errorf("the window opened (step %s ran) before the PgBouncer fence was checked\n%s", s.Step, rep)
		}
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
		t.Errorf("route after the rollback: %+v, %v", route, err)
	}
}

// waitingClients reads cl_waiting of db's pool from SHOW POOLS.
func waitingClients(t *testing.T, console *pgx.Conn, db string) int {
	t.Helper()
	rows, err := console.Query(context.Background(), "SHOW POOLS")
	must(t, err)
	defer rows.Close()
	waiting := 0
	for rows.Next() {
		vals, err := rows.Values()
		must(t, err)
		var name string
		var n int
		for i, fd := range rows.FieldDescriptions() {
			switch fd.Name {
			case "database":
				name = fmt.Sprint(vals[i])
			case "cl_waiting":
				n, _ = strconv.Atoi(fmt.Sprint(vals[i]))
			}
		}
		if name == db {
			waiting += n
		}
	}
	must(t, rows.Err())
	return waiting
}
