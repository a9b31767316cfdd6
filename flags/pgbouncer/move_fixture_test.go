package pgbouncer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/pgbin"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// moveFixture is a fleet wired as a user would from connection strings:
// a control database holding the catalog, the journal and the routes
// (PostgresCatalog, PostgresJournal, PostgresProvider), instances pg-a
// and pg-b, and tenant acme on pg-a, initialized by pgbench -i.
type moveFixture struct {
	control, src, dst *localpg.Instance
	controlURL        string
	catalog           *fleet.PostgresCatalog
	journal           *cutover.PostgresJournal
	routes            *flags.PostgresProvider // the mover's
	resolver          *flags.Resolver         // the mover's
	pgbench           string
}

func startMoveFixture(t *testing.T) *moveFixture {
	t.Helper()
	ctx := context.Background()
	settings := map[string]string{"max_slot_wal_keep_size": "1GB"}
	fx := &moveFixture{
		control: localpgtest.Start(t, &localpg.Config{Name: "control"}),
		src:     localpgtest.Start(t, &localpg.Config{Name: "pg-a", Settings: settings}),
		dst:     localpgtest.Start(t, &localpg.Config{Name: "pg-b", Settings: settings}),
	}
	localpgtest.CreateDatabase(t, fx.control, "daisychain")
	fx.controlURL = fx.control.ConnString("daisychain")
	pool, err := pgxpool.New(ctx, fx.controlURL)
	must(t, err)
	t.Cleanup(pool.Close)
	fx.catalog, err = fleet.NewPostgresCatalog(ctx, pool, nil)
	must(t, err)
	fx.journal, err = cutover.NewPostgresJournal(ctx, pool, nil)
	must(t, err)
	fx.routes, fx.resolver = fx.routeReader(t)
	flagstest.Register(t, fx.catalog, "pg-a", fx.src)
	flagstest.Register(t, fx.catalog, "pg-b", fx.dst)

	dir, err := pgbin.Find("", "pgbench")
	must(t, err)
	fx.pgbench = filepath.Join(dir, "pgbench")
	localpgtest.CreateDatabase(t, fx.src, "acme")
	fx.runPgbench(t, "-i", "-q", "-s", "1", "-h", localpg.Host, "-p", strconv.Itoa(fx.src.Port()), "-U", localpg.SuperuserDefault, "acme")
	// Preflight refuses pgbench_history, rightly: it has no primary key,
	// so once published its updates and deletes would fail on the source
	// and could not be replicated. pgbench only inserts into it, so a
	// user gives it the identity that costs inserts nothing.
	conn, err := fx.src.Connect(ctx, "acme")
	must(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "ALTER TABLE pgbench_history REPLICA IDENTITY FULL")
	must(t, err)
	must(t, fx.catalog.AddTenant(ctx, fleet.Tenant{ID: "acme", Database: "acme", Instance: "pg-a"}))
	return fx
}

// routeReader is a PostgresProvider on the control database and a
// Resolver over it, as another process would have.
func (fx *moveFixture) routeReader(t *testing.T) (*flags.PostgresProvider, *flags.Resolver) {
	t.Helper()
	provider, err := flags.NewPostgresProvider(context.Background(), fx.controlURL, &flags.PostgresConfig{Catalog: fx.catalog})
	must(t, err)
	t.Cleanup(provider.Close)
	resolver, err := flags.NewResolver(flagstest.Client(t, provider), fx.catalog, nil)
	must(t, err)
	return provider, resolver
}

// mover returns a Mover with fences.
func (fx *moveFixture) mover(t *testing.T, fences ...cutover.Fence) *cutover.Mover {
	t.Helper()
	m, err := cutover.New(&cutover.Config{Catalog: fx.catalog, Publisher: fx.routes, Routes: fx.resolver,
		Journal: fx.journal, Fences: fences, WindowBudget: 30 * time.Second})
	must(t, err)
	return m
}

func (fx *moveFixture) runPgbench(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(fx.pgbench, args...).CombinedOutput(); err != nil {
		t.Fatalf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// count reads count(*) of a table of acme on inst.
func count(t *testing.T, inst *localpg.Instance, table string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "acme")
	must(t, err)
	defer conn.Close(ctx)
	var n int
	must(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// pgbenchRun is a pgbench run under way: its output lines, each with
// when it was read.
type pgbenchRun struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // once done: pgbench's exit

	mu    sync.Mutex
	lines []timedLine
}

type timedLine struct {
	at   time.Time
	text string
}

// startPgbench runs pgbench with args (the database last), reading its
// output as it comes.
func (fx *moveFixture) startPgbench(t *testing.T, args ...string) *pgbenchRun {
	t.Helper()
	r := &pgbenchRun{cmd: exec.Command(fx.pgbench, args...), done: make(chan struct{})}
	out, err := r.cmd.StdoutPipe()
	must(t, err)
	r.cmd.Stderr = r.cmd.Stdout
	must(t, r.cmd.Start())
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, timedLine{time.Now(), sc.Text()})
			r.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, out)
		r.err = r.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

// wait waits, up to limit, for pgbench to exit and returns its output;
// past limit it kills pgbench and says so.
func (r *pgbenchRun) wait(limit time.Duration) (string, error) {
	var killed error
	select {
	case <-r.done:
	case <-time.After(limit):
		_ = r.cmd.Process.Kill()
		<-r.done
		killed = fmt.Errorf("pgbench still ran %s later than -T says: its clients are held (a PgBouncer left paused?); killed", limit)
	}
	var b strings.Builder
	for _, l := range r.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	if killed != nil {
		return b.String(), killed
	}
	return b.String(), r.err
}

// maxLatency is the highest average latency of pgbench's progress
// reports (-P), in ms.
func (r *pgbenchRun) maxLatency() float64 {
	worst := 0.0
	for _, l := range r.lines {
		if strings.HasPrefix(l.text, "progress:") {
			worst = max(worst, figure(l.text, "lat"))
		}
	}
	return worst
}

// figure reads a number pgbench printed after label ("number of
// transactions actually processed: "), or -1.
func figure(out, label string) float64 {
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `\s*([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// waitForRows waits until table of acme on inst has rows: the workload
// runs.
func waitForRows(t *testing.T, inst *localpg.Instance, table string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); count(t, inst, table) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no row in %s within a minute", table)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func slotsOn(t *testing.T, inst *localpg.Instance) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	must(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT slot_name FROM pg_replication_slots ORDER BY 1")
	must(t, err)
	var slots []string
	for rows.Next() {
		var s string
		must(t, rows.Scan(&s))
		slots = append(slots, s)
	}
	must(t, rows.Err())
	return slots
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
