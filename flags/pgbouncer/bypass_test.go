package pgbouncer_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/localpg"
)

// probe connects to the source afresh every probeEvery and inserts a
// row, recording what each attempt met: what a client that bypasses
// both the Router and PgBouncer, and reconnects after an error, sees.
type probe struct {
	mu       sync.Mutex
	attempts []attempt
}

type attempt struct {
	at  time.Time
	err string // "" for a committed insert; else SQLSTATE and message
}

const probeEvery = 10 * time.Millisecond

func (p *probe) run(ctx context.Context, url string) {
	for ctx.Err() == nil {
		at := time.Now()
		err := func() error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			_, err = conn.Exec(ctx, "INSERT INTO probe DEFAULT VALUES")
			return err
		}()
		if ctx.Err() != nil {
			return
		}
		a := attempt{at: at}
		if err != nil {
			a.err = describe(err)
		}
		p.mu.Lock()
		p.attempts = append(p.attempts, a)
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(probeEvery):
		}
	}
}

// describe is an error's SQLSTATE and message, without what differs
// from one attempt to the next (ports, PIDs).
func describe(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code + " " + pgErr.Message
	}
	return "no SQLSTATE: " + err.Error()
}

// TestClientBypassingRouterAndPgBouncer measures what a client that
// connects straight to the source (neither through a Router nor through
// a followed PgBouncer) meets during a move and after it: pgbench with
// persistent connections, and a probe that reconnects for every insert.
// It asserts what the library promises (every transaction pgbench
// counted is on the target, nothing commits on the source after the
// switch) and logs the rest, which the package documentation reports.
func TestClientBypassingRouterAndPgBouncer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := startMoveFixture(t)
	conn, err := fx.src.Connect(ctx, "acme")
	must(t, err)
	// The probe is an application: its own role, not a superuser (the
	// fence by privileges that a reverse stream puts on the source copy
	// binds no superuser: see cutover's revert.go).
	_, err = conn.Exec(ctx, `CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
		CREATE ROLE probe_app LOGIN; GRANT INSERT ON probe TO probe_app; GRANT USAGE ON SEQUENCE probe_id_seq TO probe_app`)
	must(t, err)
	conn.Close(ctx)
	// Roles are the instance's: the target has the application's too.
	conn, err = fx.dst.Connect(ctx, "postgres")
	must(t, err)
	_, err = conn.Exec(ctx, "CREATE ROLE probe_app LOGIN")
	must(t, err)
	conn.Close(ctx)
	mover := fx.mover(t) // the database fence; the route pause holds nothing of this client's
	moveEvents, unsubscribe := mover.Subscribe(cutover.EventWindowOpened, cutover.EventWindowClosed, cutover.EventStepStarted)

	const seconds = 15
	bench := fx.startPgbench(t, "-n", "-c", "4", "-j", "2", "-T", strconv.Itoa(seconds), "-P", "1",
		"-h", localpg.Host, "-p", strconv.Itoa(fx.src.Port()), "-U", localpg.SuperuserDefault, "acme")
	var p probe
	probeCtx, stopProbe := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		p.run(probeCtx, fx.src.ConnStringAs("probe_app", "", "acme"))
	}()
	defer func() { stopProbe(); <-probeDone }()
	waitForRows(t, fx.src, "pgbench_history")

	rep, err := mover.Move(ctx, cutover.Request{ID: "bypass-move", Tenant: "acme", Target: "pg-b"})
	unsubscribe()
	if err != nil {
		t.Fatalf("move: %v\n%s", err, rep)
	}
	var opened, fenced, closed time.Time
	for e := range moveEvents {
		switch {
		case e.Kind == cutover.EventWindowOpened:
			opened = e.At
		case e.Kind == cutover.EventStepStarted && e.Step == cutover.StepFence:
			fenced = e.At
		case e.Kind == cutover.EventWindowClosed:
			closed = e.At
		}
	}
	// Half a second of probing after the switch.
	time.Sleep(500 * time.Millisecond)
	stopProbe()
	<-probeDone
	out, benchErr := bench.wait(time.Minute)

	processed := figure(out, "number of transactions actually processed:")
	if onTarget := count(t, fx.dst, "pgbench_history"); float64(onTarget) != processed {
		t.Errorf("pgbench counted %v transactions, the target has %d: an acknowledged write was lost or one not acknowledged kept", processed, onTarget)
	}
	var committed, committedAfter int
	for _, a := range p.attempts {
		if a.err == "" {
			committed++
			if a.at.After(closed) {
				committedAfter++
			}
		}
	}
	if onTarget := count(t, fx.dst, "probe"); onTarget != committed {
		t.Errorf("the probe committed %d inserts, the target has %d", committed, onTarget)
	}
	if committedAfter > 0 {
		t.Errorf("%d probe inserts committed on the source after the switch", committedAfter)
	}

	// What the probe met, by phase relative to the window.
	type phase struct {
		name      string
		from, to  time.Time
		ok        int
		errs      map[string]int
		firstErrs time.Time
	}
	end := time.Now()
	phases := []*phase{
		{name: "before the window", to: opened},
		{name: "window, before the fence", from: opened, to: fenced},
		{name: "window, from the fence", from: fenced, to: closed},
		{name: "after the switch", from: closed, to: end},
	}
	for _, a := range p.attempts {
		for _, ph := range phases {
			if a.at.Before(ph.from) || !a.at.Before(ph.to) {
				continue
			}
			if a.err == "" {
				ph.ok++
				continue
			}
			if ph.errs == nil {
				ph.errs = map[string]int{}
				ph.firstErrs = a.at
			}
			ph.errs[a.err]++
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "move window %s (fence %s after the pause), switch at +%s\n", fmtDur(rep.Window), fmtDur(fenced.Sub(opened)), fmtDur(closed.Sub(opened)))
	for _, ph := range phases {
		fmt.Fprintf(&report, "  probe %s: %d inserts committed", ph.name, ph.ok)
		if len(ph.errs) > 0 {
			fmt.Fprintf(&report, ", first error at %+.1f ms from the window's start:", float64(ph.firstErrs.Sub(opened).Microseconds())/1000)
			var kinds []string
			for k, n := range ph.errs {
				kinds = append(kinds, fmt.Sprintf("%d× %s", n, k))
			}
			sort.Strings(kinds)
			fmt.Fprintf(&report, " %s", strings.Join(kinds, "; "))
		}
		report.WriteByte('\n')
	}
	fmt.Fprintf(&report, "  pgbench (persistent connections): exit %v, %v transactions processed, %v on the target; its errors:\n", benchErr, processed, count(t, fx.dst, "pgbench_history"))
	seen := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "error") || strings.Contains(l, "FATAL") || strings.Contains(l, "aborted") {
			if !seen[l] {
				seen[l] = true
				fmt.Fprintf(&report, "    %s\n", l)
			}
		}
	}
	t.Log(report.String())
}
