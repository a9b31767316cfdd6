package pgbouncer_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags/pgbouncer"
	"github.com/daisychain-db/daisychain/flags/pgbouncer/pgbouncertest"
	"github.com/daisychain-db/daisychain/localpg"
)

// TestPgbenchThroughPgBouncerDuringAMove is the acceptance test:
// pgbench through PgBouncer (transaction pooling, several clients) runs
// across a move of its tenant whose fences are PgBouncer's PAUSE and the
// database fence, with a Follower beside PgBouncer. pgbench exits 0 with
// no failed transaction, every transaction it counted is on the target,
// PgBouncer's entry points at the target and runs, and no slot is left on
// the source.
func TestPgbenchThroughPgBouncerDuringAMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := startMoveFixture(t)
	pgb := pgbouncertest.Start(t, &pgbouncertest.Config{Settings: map[string]string{"default_pool_size": "8"}})
	_, followerRoutes := fx.routeReader(t)
	follower, err := pgbouncer.New(&pgbouncer.Config{Resolver: followerRoutes, Admin: pgb.Admin, File: pgb.File, Tenants: []string{"acme"}})
	must(t, err)
	events := run(t, follower)
	waitFor(t, events, pgbouncer.EventSynced)
	mover := fx.mover(t, cutover.PgBouncerFence{Admin: pgb.Admin}, cutover.DatabaseFence{})

	const seconds = 15
	bench := fx.startPgbench(t, "-n", "-c", "4", "-j", "2", "-T", strconv.Itoa(seconds), "-P", "1",
		"-h", localpg.Host, "-p", strconv.Itoa(pgb.Port), "-U", localpg.SuperuserDefault, "acme")
	waitForRows(t, fx.src, "pgbench_history")
	rep, err := mover.Move(ctx, cutover.Request{ID: "pgbench-move", Tenant: "acme", Target: "pg-b"})
	if err != nil {
		t.Fatalf("move: %v\n%s", err, rep)
	}
	select {
	case <-bench.done:
		t.Fatalf("pgbench (-T %d) ended before the move did: the run does not span the move; raise -T", seconds)
	default:
	}
	out, err := bench.wait(time.Minute)
	if err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	processed := figure(out, "number of transactions actually processed:")
	failed := figure(out, "number of failed transactions:")
	tps := figure(out, "tps =")
	if processed <= 0 || failed != 0 {
		t.Errorf("pgbench: %v processed, %v failed; want some and 0\n%s", processed, failed, out)
	}
	if onTarget := count(t, fx.dst, "pgbench_history"); float64(onTarget) != processed {
		t.Errorf("pgbench_history on the target has %d rows, pgbench counted %v transactions", onTarget, processed)
	}
	console := pgb.Console(t)
	if got := pgbouncertest.Databases(t, console)["acme"]; got.Port != fx.dst.Port() || got.Paused {
		t.Errorf("PgBouncer's entry after the move: %+v, want the target's port %d, not paused", got, fx.dst.Port())
	}
	if slots := slotsOn(t, fx.src); len(slots) > 0 {
		t.Errorf("slots left on the source: %v", slots)
	}
	var pausedAt, resumedAt time.Time
	for len(events) > 0 {
		switch e := <-events; e.Kind {
		case pgbouncer.EventPaused:
			pausedAt = e.At
		case pgbouncer.EventResumed:
			resumedAt = e.At
		}
	}
	t.Logf("pgbench through PgBouncer across the move: %v transactions, %v failed, tps %v, worst 1-s average latency %.1f ms; move window %s (budget %s), move %s; PgBouncer paused by the Follower for %s",
		processed, failed, tps, bench.maxLatency(), fmtDur(rep.Window), rep.WindowBudget, rep.Finished.Sub(rep.Started).Round(time.Millisecond), fmtDur(resumedAt.Sub(pausedAt)))
	t.Log(fmt.Sprint(rep))
}
