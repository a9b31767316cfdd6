package cutover_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// BenchmarkRevertWindow measures the Revert window beside the Move
// window, in the same run and on the same tenant: under 16 writers
// through the Router (each pausing 5 ms between writes), the tenant moves
// from pg-a to pg-b, the application writes there, and the move is
// reverted; it reports p50 and p99 of both windows as the library
// measured them and of the gap the application saw around each, with
// application errors and writes missing on the source at the end of each
// revert. Goal: the revert's window the same as the move's.
//
//	go test ./cutover -run '^$' -bench RevertWindow -benchtime 1x -timeout 1h
//
// DAISYCHAIN_BENCH_MOVES sets the moves (each then reverted; default 10).
func BenchmarkRevertWindow(b *testing.B) {
	moves := 10
	if v, err := strconv.Atoi(os.Getenv("DAISYCHAIN_BENCH_MOVES")); err == nil && v > 0 {
		moves = v
	}
	ctx := context.Background()
	f, mover := startBenchFleet(b, "acme")
	const writers, writePause = 16, 5 * time.Millisecond
	for b.Loop() {
		var move, moveGap, revert, revertGap []time.Duration
		steps := map[cutover.Step][]time.Duration{}
		var errs, missing int64
		for i := range moves {
			emptyWorkload(b, f, "pg-a", "acme")
			w := cutovertest.StartPacedWorkload(f.Router, "acme", writers, writePause)
			settle(b, func() error { return w.WaitForAcks(ctx, 50) })
			w.ResetGap()
			id := "bench-revert-" + strconv.Itoa(i)
			rep, err := mover.Move(ctx, cutover.Request{ID: id, Tenant: "acme", Target: "pg-b"})
			if err != nil {
				b.Fatalf("move %d: %v\n%s", i, err, rep)
			}
			settle(b, func() error { return w.WaitForAcks(ctx, 50) })
			moveGap, move = append(moveGap, w.ResetGap()), append(move, rep.Window)
			rev, err := mover.Revert(ctx, id)
			if err != nil {
				b.Fatalf("revert %d: %v\n%s", i, err, rev)
			}
			settle(b, func() error { return w.WaitForAcks(ctx, 50) })
			st := w.Stop()
			revertGap, revert = append(revertGap, st.MaxGap), append(revert, rev.Window)
			for _, s := range rev.Steps {
				steps[s.Step] = append(steps[s.Step], s.Duration)
			}
			errs += st.Errors
			if st.Errors > 0 {
				b.Logf("move and revert %d: %d application errors, first: %v", i, st.Errors, st.FirstError)
			}
			missing += missingOnInstance(b, f, "pg-a", "acme", w.Missing)
		}
		for _, s := range [][]time.Duration{move, moveGap, revert, revertGap} {
			slices.Sort(s)
		}
		b.ReportMetric(ms(pct(move, 50)), "move-window-p50-ms")
		b.ReportMetric(ms(pct(move, 99)), "move-window-p99-ms")
		b.ReportMetric(ms(pct(revert, 50)), "revert-window-p50-ms")
		b.ReportMetric(ms(pct(revert, 99)), "revert-window-p99-ms")
		b.ReportMetric(ms(pct(moveGap, 50)), "move-app-gap-p50-ms")
		b.ReportMetric(ms(pct(revertGap, 50)), "revert-app-gap-p50-ms")
		b.ReportMetric(float64(errs), "app-errors")
		b.ReportMetric(float64(missing), "missing-writes")
		var inWindow []string
		for _, s := range []cutover.Step{cutover.StepPause, cutover.StepQuiesce, cutover.StepFence, cutover.StepBarrier,
			cutover.StepWaitTarget, cutover.StepSyncSequences, cutover.StepSnapshot, cutover.StepOpenSource, cutover.StepSwitch} {
			slices.Sort(steps[s])
			inWindow = append(inWindow, fmt.Sprintf("%s %s", s, pct(steps[s], 50).Round(100*time.Microsecond)))
		}
		b.Logf("revert window steps, p50: %s", strings.Join(inWindow, ", "))
	}
}
