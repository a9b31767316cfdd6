package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/pgbouncer/pgbouncertest"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// marker is every instance's password, given to the command only in
// PGPASSWORD: no output may ever show it.
const marker = "pw-Marker-5e1f0c"

// fleetUnderTest is a control database and two instances, set up through
// the library as a host application would, and every output the
// command printed.
type fleetUnderTest struct {
	control           string // without the password
	servers           map[string]*localpg.Instance
	catalog           *fleet.PostgresCatalog
	journal           *cutover.PostgresJournal
	provider          *flags.PostgresProvider
	mu                sync.Mutex
	outputs           bytes.Buffer
	controlWithSecret string
}

func startFleet(t *testing.T) *fleetUnderTest {
	t.Helper()
	ctx := context.Background()
	f := &fleetUnderTest{servers: map[string]*localpg.Instance{}}
	for _, name := range []string{"control", "pg-1", "pg-2"} {
		f.servers[name] = localpgtest.Start(t, &localpg.Config{Name: name, Password: marker})
	}
	localpgtest.CreateDatabase(t, f.servers["control"], "daisychain")
	f.controlWithSecret = f.servers["control"].ConnString("daisychain")
	f.control = f.servers["control"].ConnStringAs("postgres", "", "daisychain")
	pool, err := pgxpool.New(ctx, f.controlWithSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if f.catalog, err = fleet.NewPostgresCatalog(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	if f.journal, err = cutover.NewPostgresJournal(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pg-1", "pg-2"} {
		s := f.servers[id]
		// The catalog strips the password from Admin.
		if err := f.catalog.RegisterInstance(ctx, fleet.Instance{ID: id, Admin: s.ConnString("postgres"),
			Endpoint: fleet.Endpoint{Host: localpg.Host, Port: s.Port()}, Limits: fleet.Limits{MaxTenants: 4}}); err != nil {
			t.Fatal(err)
		}
	}
	if f.provider, err = flags.NewPostgresProvider(ctx, f.controlWithSecret, &flags.PostgresConfig{Catalog: f.catalog}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.provider.Close)
	return f
}

// addTenant creates a tenant database on pg-1 with rows rows of about
// 200 bytes each, and records it in the catalog.
func (f *fleetUnderTest) addTenant(t *testing.T, id string, rows int) {
	t.Helper()
	ctx := context.Background()
	localpgtest.CreateDatabase(t, f.servers["pg-1"], id)
	conn, err := f.servers["pg-1"].Connect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE items (id bigint PRIMARY KEY, body text NOT NULL);
		INSERT INTO items SELECT i, repeat(md5(i::text), 6) FROM generate_series(1, `+fmt.Sprint(rows)+`) i`); err != nil {
		t.Fatal(err)
	}
	if err := f.catalog.AddTenant(ctx, fleet.Tenant{ID: id, Database: id, Instance: "pg-1"}); err != nil {
		t.Fatal(err)
	}
}

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the command with the control database in the environment,
// the password in PGPASSWORD, and args.
func (f *fleetUnderTest) run(t *testing.T, args ...string) result {
	t.Helper()
	return f.runEnv(t, []string{ControlEnv + "=" + f.control}, args...)
}

func (f *fleetUnderTest) runEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := f.command(env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	f.record(args, r.stdout, r.stderr)
	return r
}

// command is the command with the password in PGPASSWORD, no password
// file, and env; DAISYCHAIN_CONTROL only if env gives it.
func (f *fleetUnderTest) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(context.Background(), bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, ControlEnv+"=") && !strings.HasPrefix(kv, "PGPASS") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PGPASSWORD="+marker, "PGPASSFILE=/nonexistent")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func (f *fleetUnderTest) record(args []string, outs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// The command line may hold the password on purpose; what the
	// command printed must not.
	fmt.Fprintf(&f.outputs, "$ daisychain %s\n", strings.ReplaceAll(strings.Join(args, " "), marker, "MARKER"))
	for _, o := range outs {
		f.outputs.WriteString(o)
	}
}

// statusRow reads the status of one journal as --json says it.
func (f *fleetUnderTest) statusRows(t *testing.T) map[string]journalRow {
	t.Helper()
	r := f.run(t, "status", "--json")
	if r.code != 0 {
		t.Fatalf("status --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var doc struct {
		Journals []journalRow `json:"journals"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
	}
	rows := map[string]journalRow{}
	for _, row := range doc.Journals {
		rows[row.ID] = row
	}
	return rows
}

// slots counts the replication slots on an instance.
func (f *fleetUnderTest) slots(t *testing.T, inst string) int {
	t.Helper()
	return f.count(t, inst, "postgres", "SELECT count(*) FROM pg_replication_slots")
}

func (f *fleetUnderTest) count(t *testing.T, inst, db, query string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := f.servers[inst].Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fleetUnderTest) located(t *testing.T, tenant string) string {
	t.Helper()
	tn, err := f.catalog.Locate(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	return tn.Instance
}

// TestOperator runs the command as an operator would, against a control
// database and two local instances: status, plan, move, retire, a move
// killed mid-copy and resumed, bad inputs, and never the password.
func TestOperator(t *testing.T) {
	f := startFleet(t)
	f.addTenant(t, "t1", 2000)
	f.addTenant(t, "t2", 400_000)
	ctx := context.Background()

	t.Run("status of an empty journal", func(t *testing.T) {
		r := f.run(t, "status")
		if r.code != 0 || !strings.Contains(r.stdout, "no moves") {
			t.Errorf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if rows := f.statusRows(t); len(rows) != 0 {
			t.Errorf("status --json of an empty journal lists %v", rows)
		}
	})

	t.Run("bad inputs change nothing", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			env  []string
			code int
			says string
		}{
			{args: []string{"status"}, env: []string{}, code: exitUsage, says: "--control"},
			{args: []string{"move", "nosuch", "pg-2"}, code: exitFailure, says: "nosuch"},
			{args: []string{"move", "t1", "pg-9"}, code: exitFailure, says: "pg-9"},
			{args: []string{"move", "t1"}, code: exitUsage, says: "target instance"},
			{args: []string{"move", "t1", "pg-9", "--dry-run"}, code: exitFailure, says: "pg-9"},
			{args: []string{"rehearse", "nosuch", "pg-2"}, code: exitFailure, says: "nosuch"},
			{args: []string{"rehearse", "t1", "pg-1"}, code: exitFailure, says: "pg-1"},
			{args: []string{"rehearse", "t1"}, code: exitUsage, says: "target instance"},
			{args: []string{"plan", "drain", "pg-1", "--threshold", "files=lots"}, code: exitUsage, says: "--threshold"},
			{args: []string{"plan", "drain", "pg-1", "--threshold", "weight=3"}, code: exitUsage, says: "weight"},
			{args: []string{"plan", "drain", "pg-1"}, code: exitUsage, says: "--threshold"},
			{args: []string{"plan", "drain", "pg-9", "--threshold", "tenants=1"}, code: exitFailure, says: "pg-9"},
			{args: []string{"drain", "pg-1", "--threshold", "bytes=1XB"}, code: exitUsage, says: "bytes"},
			{args: []string{"retire", "no-such-move"}, code: exitFailure, says: "no-such-move"},
			{args: []string{"resume", "no-such-move"}, code: exitFailure, says: "no-such-move"},
			{args: []string{"frobnicate"}, code: exitUsage, says: "frobnicate"},
			{args: []string{"plan", "frobnicate", "pg-1"}, code: exitUsage, says: "plan takes chain, drain, refill"},
			// With --json too, a failure before the document is said.
			{args: []string{"status", "--json", "--control", "postgres://postgres@127.0.0.1:1/daisychain"}, env: []string{}, code: exitFailure, says: "control database"},
			// A password in the connection string is never echoed, even
			// when the string does not parse.
			{args: []string{"status", "--control", "postgres://postgres:" + marker + "@127.0.0.1:notaport/x"}, env: []string{}, code: exitUsage, says: "--control"},
		} {
			env := c.env
			if env == nil {
				env = []string{ControlEnv + "=" + f.control}
			}
			r := f.runEnv(t, env, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.says) {
				t.Errorf("%v: exit %d, want %d with a message naming %q\nstdout: %s\nstderr: %s", c.args, r.code, c.code, c.says, r.stdout, r.stderr)
			}
		}
		if rows := f.statusRows(t); len(rows) != 0 {
			t.Errorf("bad inputs journaled %v", rows)
		}
		if got := f.located(t, "t1"); got != "pg-1" {
			t.Errorf("t1 is on %s after bad inputs, want pg-1", got)
		}
		if localpgtest.HasDatabase(t, f.servers["pg-2"], "t1") {
			t.Error("a refused move created t1 on pg-2")
		}
	})

	t.Run("plan drain", func(t *testing.T) {
		r := f.run(t, "plan", "drain", "pg-1", "--threshold", "tenants=1")
		if r.code != 0 || !strings.Contains(r.stdout, "drain pg-1") || !strings.Contains(r.stdout, "t1") || !strings.Contains(r.stdout, "pg-2") {
			t.Errorf("plan drain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = f.run(t, "plan", "drain", "pg-1", "--threshold", "tenants=1", "--json")
		var doc struct {
			Plan struct {
				Moves []struct {
					Tenant, From, To string
				} `json:"moves"`
				Estimate int64 `json:"estimate_ns"`
			} `json:"plan"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
			t.Fatalf("plan drain --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		// The smaller tenant goes first, and one move is enough.
		if len(doc.Plan.Moves) != 1 || doc.Plan.Moves[0].Tenant != "t1" || doc.Plan.Moves[0].To != "pg-2" || doc.Plan.Estimate <= 0 {
			t.Errorf("plan drain --json: %+v, want t1 to pg-2 with an estimate", doc.Plan)
		}
	})

	t.Run("rehearse, then estimates rest on it", func(t *testing.T) {
		r := f.run(t, "move", "t1", "pg-2", "--dry-run")
		if r.code != 0 || !strings.Contains(r.stdout, "basis: no measured runs") {
			t.Errorf("move --dry-run before any rehearsal: exit %d, want estimates on the defaults\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = f.run(t, "rehearse", "t1", "pg-2", "--id", "rehearse-t1", "--json")
		var doc struct {
			Report *cutover.Report `json:"report"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 || doc.Report == nil {
			t.Fatalf("rehearse --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		m := doc.Report.Measurement
		if doc.Report.Kind != "rehearsal" || m == nil || m.Kind != cutover.MeasuredRehearsal || m.Source != "pg-1" || m.Target != "pg-2" ||
			m.Step(cutover.StepCatchUp) <= 0 || m.BytesCopied <= 0 {
			t.Errorf("rehearse --json: report %+v, measurement %+v: want a rehearsal pg-1 -> pg-2 that timed its catch-up", doc.Report, m)
		}
		r = f.run(t, "rehearse", "t1", "pg-2")
		if r.code != 0 || !strings.Contains(r.stdout, "rehearsed, its copy dropped") || !strings.Contains(r.stdout, "measured: rehearsal") {
			t.Errorf("rehearse: exit %d, want its report and measurement\n%s%s", r.code, r.stdout, r.stderr)
		}
		// Nothing moved, nothing left behind.
		if got := f.located(t, "t1"); got != "pg-1" {
			t.Errorf("t1 is on %s after rehearsals, want pg-1", got)
		}
		if n := f.count(t, "pg-2", "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE '%t1%'"); n != 0 || f.slots(t, "pg-1") != 0 {
			t.Errorf("after rehearsals pg-2 has %d databases of t1, pg-1 %d replication slots; want none", n, f.slots(t, "pg-1"))
		}
		const basis = "2 measured runs of pg-1->pg-2 (2 rehearsals)"
		r = f.run(t, "move", "t1", "pg-2", "--dry-run")
		if r.code != 0 || !strings.Contains(r.stdout, "basis: "+basis) || !strings.Contains(r.stdout, "catch_up") {
			t.Errorf("move --dry-run: exit %d, want step estimates resting on %q\n%s%s", r.code, basis, r.stdout, r.stderr)
		}
		r = f.run(t, "plan", "drain", "pg-1", "--threshold", "tenants=1")
		if r.code != 0 || !strings.Contains(r.stdout, "pg-1 -> pg-2: "+basis) {
			t.Errorf("plan drain: exit %d, want estimates resting on %q\n%s%s", r.code, basis, r.stdout, r.stderr)
		}
		if got := f.located(t, "t1"); got != "pg-1" {
			t.Errorf("t1 is on %s after dry runs, want pg-1", got)
		}
	})

	t.Run("move, status, retire", func(t *testing.T) {
		r := f.run(t, "move", "t1", "pg-2", "--id", "move-t1", "--verbose", "--json")
		var doc struct {
			Report   *cutover.Report `json:"report"`
			WindowMS float64         `json:"window_ms"`
			Error    string          `json:"error"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 || doc.Report == nil {
			t.Fatalf("move: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if doc.Report.RolledBack || doc.WindowMS <= 0 || doc.Report.BytesCopied <= 0 || len(doc.Report.Steps) == 0 {
			t.Errorf("move report %+v: want moved, with its window, bytes and steps", doc.Report)
		}
		if n := f.count(t, "pg-2", "t1", "SELECT count(*) FROM items"); n != 2000 {
			t.Errorf("t1 on pg-2 has %d rows, want 2000", n)
		}
		route, found, err := f.provider.Published(ctx, "t1")
		if err != nil || !found || route.Instance != "pg-2" || route.Paused {
			t.Errorf("t1's route: %+v (found %v, %v), want to pg-2, not paused", route, found, err)
		}
		if n := f.slots(t, "pg-1"); n != 0 {
			t.Errorf("%d replication slots left on the source", n)
		}
		row, ok := f.statusRows(t)["move-t1"]
		if !ok || row.State != "done" || row.Tenant != "t1" || row.Source != "pg-1" || row.Target != "pg-2" || row.WindowMS == nil || *row.WindowMS <= 0 {
			t.Errorf("status of move-t1: %+v, want done from pg-1 to pg-2 with its window", row)
		}
		human := f.run(t, "status")
		if !strings.Contains(human.stdout, "move-t1") || !strings.Contains(human.stdout, "done") {
			t.Errorf("status:\n%s", human.stdout)
		}

		if r := f.run(t, "retire", "move-t1"); r.code != 0 || !strings.Contains(r.stdout, "retired") {
			t.Fatalf("retire: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if localpgtest.HasDatabase(t, f.servers["pg-1"], "t1") {
			t.Error("retire left t1's copy on pg-1")
		}
		if row := f.statusRows(t)["move-t1"]; row.State != "retired" {
			t.Errorf("status after retire: %+v, want retired", row)
		}
	})

	t.Run("killed mid-copy, then resumed", func(t *testing.T) {
		addr := freeAddr(t)
		cmd := f.command([]string{ControlEnv + "=" + f.control}, "move", "t2", "pg-2", "--id", "move-t2", "--metrics-listen", addr)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			f.record([]string{"move t2 (killed)"}, out.String())
		}()
		// Wait until the move is in its copy and catch-up, as the journal
		// says, and its metrics count it as running.
		waitFor(t, "the catch-up to start", func() bool {
			es, err := f.journal.Entries(ctx, "move-t2")
			return err == nil && es[len(es)-1].Step == cutover.StepCatchUp && es[len(es)-1].Status == cutover.StatusStarted
		})
		active := regexp.MustCompile(`(?m)^daisychain_moves_active(\{[^}]*\})? 1$`)
		waitFor(t, "the metrics to count the move as running", func() bool {
			body := scrape(addr)
			if !active.MatchString(body) {
				return false
			}
			f.record([]string{"metrics"}, body)
			return true
		})
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if strings.Contains(out.String(), "t2 copy") {
			t.Errorf("progress bars drawn with stderr not a terminal:\n%s", out.String())
		}
		es, err := f.journal.Entries(ctx, "move-t2")
		if err != nil {
			t.Fatal(err)
		}
		if last := es[len(es)-1]; last.Step != cutover.StepCatchUp || last.Status != cutover.StatusStarted {
			t.Fatalf("killed at %s (%s), want inside the catch-up", last.Step, last.Status)
		}
		if row := f.statusRows(t)["move-t2"]; row.State != "open" || row.Step != string(cutover.StepCatchUp) {
			t.Errorf("status of the killed move: %+v, want open at catch_up", row)
		}

		r := f.run(t, "resume", "move-t2")
		if r.code != 0 || !strings.Contains(r.stdout, "rolled back") {
			t.Fatalf("resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if row := f.statusRows(t)["move-t2"]; row.State != "rolled back" {
			t.Errorf("status after resume: %+v, want rolled back", row)
		}
		if got := f.located(t, "t2"); got != "pg-1" {
			t.Errorf("t2 is on %s after the resume, want pg-1", got)
		}
		if n := f.slots(t, "pg-1"); n != 0 {
			t.Errorf("%d replication slots left on the source after resume", n)
		}
		if localpgtest.HasDatabase(t, f.servers["pg-2"], "t2") {
			t.Error("resume left t2's partial copy on pg-2")
		}
		if n := f.count(t, "pg-1", "t2", "SELECT count(*) FROM items"); n != 400_000 {
			t.Errorf("t2 on pg-1 has %d rows after the rollback, want 400000", n)
		}
	})

	t.Run("plan chain, refill", func(t *testing.T) {
		// t1 is on pg-2 and t2 on pg-1: a chain of pg-1 with pg-2 as its
		// spare drains t2 to pg-2, converts pg-1, and refills pg-1.1.
		r := f.run(t, "plan", "chain", "pg-1", "--spares", "pg-2", "--threshold", "tenants=1", "--json")
		var doc struct {
			Plan struct {
				Stages []struct {
					Instance, Converted string
				}
			} `json:"plan"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
			t.Fatalf("plan chain --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if len(doc.Plan.Stages) != 1 || doc.Plan.Stages[0].Instance != "pg-1" || doc.Plan.Stages[0].Converted != "pg-1.1" {
			t.Errorf("plan chain: %+v, want one stage converting pg-1 into pg-1.1", doc.Plan)
		}
		if r := f.run(t, "chain", "pg-1", "--spares", "pg-2", "--threshold", "tenants=1"); r.code != exitUsage || !strings.Contains(r.stderr, "--local-replicas") {
			t.Errorf("chain without a converter: exit %d, want %d naming --local-replicas\n%s", r.code, exitUsage, r.stderr)
		}

		r = f.run(t, "refill", "pg-1", "--from", "pg-2", "--json")
		var res struct {
			Result runResult `json:"result"`
			Error  string    `json:"error"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
			t.Fatalf("refill --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if len(res.Result.Moved) != 1 || res.Result.Moved[0].Tenant != "t1" || res.Result.Moved[0].WindowMS <= 0 || res.Result.After.Tenants != 2 {
			t.Errorf("refill: %+v, want t1 moved back onto pg-1 with its window", res.Result)
		}
		if got := f.located(t, "t1"); got != "pg-1" {
			t.Errorf("t1 is on %s after the refill, want pg-1", got)
		}
		// A refill retires each source copy once its move is done.
		if localpgtest.HasDatabase(t, f.servers["pg-2"], "t1") {
			t.Error("the refill left t1's copy on pg-2")
		}
		if row := f.statusRows(t)[res.Result.Moved[0].Move]; row.State != "retired" {
			t.Errorf("status of the refill's move: %+v, want retired", row)
		}
	})

	t.Run("progress on a terminal", func(t *testing.T) {
		script, err := exec.LookPath("script")
		if err != nil {
			t.Skip("no script(1) to give the command a terminal")
		}
		// script(1) runs the command on a pseudo-terminal of 120 columns;
		// the move's copy of t2 (about 80 MB) reports progress about once
		// a second.
		cmd := f.command([]string{ControlEnv + "=" + f.control}, "-qec", "stty cols 120 rows 40; exec "+bin+" move t2 pg-2 --id move-t2-tty", "/dev/null")
		cmd.Path, cmd.Args[0] = script, script
		out, err := cmd.CombinedOutput()
		f.record([]string{"move t2 pg-2 (on a terminal)"}, string(out))
		if err != nil {
			t.Fatalf("move on a terminal: %v\n%s", err, out)
		}
		// The copy may end before a progress report catches it under
		// way (our parallel COPY moves this tenant in a fraction of a
		// second): the bar is there, with its sizes when they were known.
		bar := regexp.MustCompile(`t2 copy +\[[=>-]+\] +[0-9.]+ [KMG]?i?[Bb] / [0-9.]+ [KMG]?i?[Bb]`)
		if !bar.Match(out) || !strings.Contains(string(out), "moved") {
			t.Errorf("no copy bar on the terminal:\n%q", out)
		}
		if got := f.located(t, "t2"); got != "pg-2" {
			t.Errorf("t2 is on %s, want pg-2", got)
		}
	})

	t.Run("interrupted mid-copy, rolled back", func(t *testing.T) {
		// t2's source copy on pg-1 goes first, so that it can move back.
		if r := f.run(t, "retire", "move-t2-tty"); r.code != 0 {
			t.Fatalf("retire: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		cmd := f.command([]string{ControlEnv + "=" + f.control}, "move", "t2", "pg-1", "--id", "move-t2-back")
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the catch-up to start", func() bool {
			es, err := f.journal.Entries(ctx, "move-t2-back")
			return err == nil && es[len(es)-1].Step == cutover.StepCatchUp && es[len(es)-1].Status == cutover.StatusStarted
		})
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		f.record([]string{"move t2 pg-1 (interrupted)"}, out.String())
		if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(out.String(), "rolled back") {
			t.Errorf("interrupted move: exit %d (%v), want %d saying it rolled back\n%s", code, err, exitFailure, out.String())
		}
		if row := f.statusRows(t)["move-t2-back"]; row.State != "rolled back" {
			t.Errorf("status of the interrupted move: %+v, want rolled back", row)
		}
		if got := f.located(t, "t2"); got != "pg-2" {
			t.Errorf("t2 is on %s after the interrupted move, want pg-2", got)
		}
		if localpgtest.HasDatabase(t, f.servers["pg-1"], "t2") {
			t.Error("the interrupted move left t2's partial copy on pg-1")
		}
		if n := f.slots(t, "pg-2"); n != 0 {
			t.Errorf("%d replication slots left on the source after the interrupted move", n)
		}
	})

	t.Run("chain with local replicas", func(t *testing.T) {
		// t1 is on pg-1, t2 on pg-2. The chain of pg-1 with pg-2 as its
		// spare converts pg-1 into pg-1.1 (t1 under the threshold stays)
		// and refills pg-1.1 with t2.
		// The replica's server runs as the postgres system user, which
		// must reach its directory: not under t.TempDir's private parent.
		dir, err := os.MkdirTemp("", "daisychain-replicas-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := f.command([]string{ControlEnv + "=" + f.control}, "chain", "pg-1", "--spares", "pg-2", "--threshold", "tenants=1",
			"--local-replicas", dir, "--id", "chain-1", "--json")
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			_ = cmd.Process.Kill()
			<-exited
			f.record([]string{"chain (interrupted)"}, stdout.String(), stderr.String())
		}()
		// The command prints its result, then keeps the converted
		// instance serving until it is stopped.
		waitFor(t, "the chain's result", func() bool {
			return strings.Contains(stderr.String(), "until you stop it") || len(exited) > 0
		})
		var doc struct {
			Chain  string       `json:"chain"`
			Stages []chainStage `json:"stages"`
			Error  string       `json:"error"`
		}
		if err := json.Unmarshal([]byte(stdout.String()), &doc); err != nil || doc.Error != "" {
			t.Fatalf("chain --json: %v %s\n%s%s", err, doc.Error, stdout.String(), stderr.String())
		}
		if len(doc.Stages) != 1 || doc.Stages[0].Converted != "pg-1.1" || doc.Stages[0].WindowMS <= 0 ||
			len(doc.Stages[0].Refilled) != 1 || doc.Stages[0].Refilled[0].Tenant != "t2" {
			t.Errorf("chain result %+v: want pg-1 converted into pg-1.1 in a window, then t2 refilled onto it", doc.Stages)
		}
		for _, tenant := range []string{"t1", "t2"} {
			if got := f.located(t, tenant); got != "pg-1.1" {
				t.Errorf("%s is on %s after the chain, want pg-1.1", tenant, got)
			}
		}
		converted, err := f.catalog.Instance(ctx, "pg-1.1")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgxConnect(ctx, converted.Endpoint, "t2")
		if err != nil {
			t.Fatalf("connect to t2 on the converted instance: %v", err)
		}
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n)
		_ = conn.Close(ctx)
		if err != nil || n != 400_000 {
			t.Errorf("t2 on pg-1.1 has %d rows (%v), want 400000", n, err)
		}
		// The converted instance asks for the password, as its source did.
		wrong := fmt.Sprintf("host=%s port=%d user=postgres password=wrong dbname=t2 sslmode=disable", converted.Endpoint.Host, converted.Endpoint.Port)
		if conn, err := pgx.Connect(ctx, wrong); err == nil {
			_ = conn.Close(ctx)
			t.Error("the converted instance let in a wrong password")
		}
		if row := f.statusRows(t)["chain-1"]; row.State != "done" || row.Kind != "chain" || row.Target != "pg-1.1" {
			t.Errorf("status of the chain: %+v, want a done chain to pg-1.1", row)
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := <-exited; err != nil {
			t.Errorf("chain after Ctrl-C: %v, want exit 0\n%s", err, stderr.String())
		}
		exited <- nil // for the deferred wait
		if _, err := pgxConnect(ctx, converted.Endpoint, "t2"); err == nil {
			t.Error("the converted instance still serves after the command stopped")
		}
	})

	f.mu.Lock()
	all := f.outputs.String()
	f.mu.Unlock()
	if testing.Verbose() {
		t.Logf("what the command printed:\n%s", all)
	}
	if strings.Contains(all, marker) {
		t.Errorf("the password appears in the command's output:\n%s", all)
	}
	if strings.Contains(all, "127.0.0.1:"+fmt.Sprint(f.servers["control"].Port())+"/daisychain") {
		t.Errorf("the control database's connection string appears in the output:\n%s", all)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func scrape(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls cond until it holds, or fails the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pgxConnect connects as an application would, to database at the
// endpoint, with the password every instance has.
func pgxConnect(ctx context.Context, e fleet.Endpoint, database string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres password=%s dbname=%s sslmode=disable", e.Host, e.Port, marker, database))
}

// TestPgBouncerFollow runs "pgbouncer follow" beside a PgBouncer while
// the command moves a tenant: PgBouncer's entry for the tenant ends on
// the target, resumed, and the follower stops at Ctrl-C with exit 0.
// Bad inputs are refused, naming what to fix.
func TestPgBouncerFollow(t *testing.T) {
	t.Parallel()
	f := startFleet(t)
	f.addTenant(t, "t3", 100)
	pgb := pgbouncertest.Start(t, &pgbouncertest.Config{Databases: map[string]string{"t3": pgbouncertest.Entry(f.servers["pg-1"], "t3")}})
	env := []string{ControlEnv + "=" + f.control, PgBouncerAdminEnv + "=" + pgb.Admin}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--file", pgb.File}, exitUsage, "--instance"},
		{[]string{"--file", pgb.File, "--instance", "pg-9"}, exitFailure, "pg-9"},
		{[]string{"--instance", "pg-1"}, exitUsage, "--file"},
		{[]string{"--file", pgb.File, "--instance", "pg-1", "--option", "password=x"}, exitUsage, "password"},
	} {
		r := f.runEnv(t, env, append([]string{"pgbouncer", "follow"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.says) {
			t.Errorf("pgbouncer follow %v: exit %d, want %d with a message naming %q\n%s%s", c.args, r.code, c.code, c.says, r.stdout, r.stderr)
		}
	}

	follow := f.command(env, "pgbouncer", "follow", "--file", pgb.File, "--instance", "pg-1", "--json")
	var out, errs syncBuffer
	follow.Stdout, follow.Stderr = &out, &errs
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill() }()
	waitFor(t, "the follower to start", func() bool { return strings.Contains(errs.String(), "following") })

	if r := f.run(t, "move", "t3", "pg-2"); r.code != 0 {
		t.Fatalf("move: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	console := pgb.Console(t)
	target := f.servers["pg-2"].Port()
	waitFor(t, "PgBouncer's t3 on pg-2, resumed", func() bool {
		db := pgbouncertest.Databases(t, console)["t3"]
		return db.Port == target && !db.Paused
	})
	if err := follow.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := follow.Wait()
	f.record([]string{"pgbouncer follow"}, out.String(), errs.String())
	if err != nil {
		t.Errorf("pgbouncer follow stopped by Ctrl-C: %v, want exit 0\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), `"event":"reloaded"`) {
		t.Errorf("the follower printed no reload:\n%s", out.String())
	}
	file, err := os.ReadFile(pgb.File)
	if err != nil {
		t.Fatal(err)
	}
	if all := f.outputs.String() + string(file); strings.Contains(all, marker) {
		t.Errorf("the password appears in the output or the file:\n%s", all)
	}
}

// TestDrainCommand: "plan refill" lists what a refill would move, and
// "drain" moves the smallest tenant off an instance down to the threshold,
// retiring its source copy; status shows the move retired.
func TestDrainCommand(t *testing.T) {
	t.Parallel()
	f := startFleet(t)
	f.addTenant(t, "t4", 100)
	f.addTenant(t, "t5", 5000)

	r := f.run(t, "plan", "refill", "pg-2", "--from", "pg-1", "--json")
	var plan struct {
		Plan struct {
			Moves []struct{ Tenant, From, To string } `json:"moves"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || r.code != 0 {
		t.Fatalf("plan refill --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if len(plan.Plan.Moves) == 0 || plan.Plan.Moves[0].To != "pg-2" || plan.Plan.Moves[0].From != "pg-1" {
		t.Errorf("plan refill: %+v, want moves from pg-1 to pg-2", plan.Plan)
	}
	if got := f.located(t, "t4"); got != "pg-1" {
		t.Errorf("plan refill moved t4 to %s", got)
	}

	r = f.run(t, "drain", "pg-1", "--threshold", "tenants=1", "--json")
	var res struct {
		Result runResult `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
		t.Fatalf("drain --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if len(res.Result.Moved) != 1 || res.Result.Moved[0].Tenant != "t4" || res.Result.Moved[0].WindowMS <= 0 || res.Result.After.Tenants != 1 {
		t.Fatalf("drain: %+v, want the smaller t4 moved, with its window, and one tenant left", res.Result)
	}
	if got := f.located(t, "t4"); got != "pg-2" {
		t.Errorf("t4 is on %s after the drain, want pg-2", got)
	}
	if n := f.count(t, "pg-2", "t4", "SELECT count(*) FROM items"); n != 100 {
		t.Errorf("t4 on pg-2 has %d rows, want 100", n)
	}
	if localpgtest.HasDatabase(t, f.servers["pg-1"], "t4") {
		t.Error("the drain left t4's source copy on pg-1")
	}
	if row := f.statusRows(t)[res.Result.Moved[0].Move]; row.State != "retired" {
		t.Errorf("status of the drain's move: %+v, want retired", row)
	}
	if n := f.slots(t, "pg-1"); n != 0 {
		t.Errorf("%d replication slots left on pg-1", n)
	}
}
