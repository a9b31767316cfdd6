package cutover_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// BenchmarkConvertWindow converts an instance of 10, 100 and 1,000 tiny
// tenant databases onto a local streaming replica, under writes through
// the Router to a sample of the tenants, and prints per size the window
// as the library measured it, the longest gap the application saw, the
// time of each window step, application errors and missing writes. The
// baseline is the same run's smallest size: the goal is a window that
// does not grow with the tenants (at 1,000, at most twice the window at
// 10, and under 1 s on 2 cores), 0 errors, 0 missing writes.
//
//	go test ./cutover -run '^$' -bench ConvertWindow -benchtime 1x -timeout 1h
//
// DAISYCHAIN_BENCH_TENANTS sets the sizes (default "10,100,1000").
func BenchmarkConvertWindow(b *testing.B) {
	sizes := []int{10, 100, 1000}
	if v := os.Getenv("DAISYCHAIN_BENCH_TENANTS"); v != "" {
		sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				b.Fatalf("DAISYCHAIN_BENCH_TENANTS=%q: want sizes like 10,100,1000", v)
			}
			sizes = append(sizes, n)
		}
	}
	for b.Loop() {
		var first time.Duration
		for _, n := range sizes {
			r := convertUnderWrites(b, n)
			if first == 0 {
				first = r.window
			}
			b.ReportMetric(ms(r.window), fmt.Sprintf("window-ms-%d", n))
			b.ReportMetric(ms(r.appGap), fmt.Sprintf("app-gap-ms-%d", n))
			b.ReportMetric(float64(r.errors), fmt.Sprintf("app-errors-%d", n))
			b.ReportMetric(float64(r.missing), fmt.Sprintf("missing-%d", n))
			b.ReportMetric(float64(r.misrouted), fmt.Sprintf("misrouted-%d", n))
			b.Logf("%4d tenants: window %s (%.1f× the window at %d), application's longest gap %s, %d errors, %d of %d writes missing, %d tenants misrouted; steps: %s",
				n, r.window.Round(time.Millisecond), float64(r.window)/float64(first), sizes[0],
				r.appGap.Round(time.Millisecond), r.errors, r.missing, r.acked, r.misrouted, r.steps)
		}
	}
}

type convertResult struct {
	window, appGap         time.Duration
	errors, missing, acked int64
	misrouted              int
	steps                  string
}

// convertUnderWrites converts an instance of n tenants, 8 of them (at
// most) under writes, and returns what the library and the application
// saw.
func convertUnderWrites(tb testing.TB, n int) convertResult {
	ctx := context.Background()
	s := startScaleFleet(tb, n)
	mover, err := s.Mover(&cutover.Config{Converter: s.Converter(), WindowBudget: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	newID := cutovertest.ConvertedID("pg-a", 1)
	rep, err := mover.Convert(ctx, cutover.ConvertRequest{ID: fmt.Sprintf("bench-%d", n), Instance: "pg-a", NewInstance: newID})
	time.Sleep(300 * time.Millisecond)
	app := s.stopWriters()
	if err != nil {
		tb.Fatalf("convert %d tenants: %v\n%s", n, err, rep)
	}
	newInst, err := s.Catalog.Instance(ctx, newID)
	if err != nil {
		tb.Fatal(err)
	}
	res := convertResult{window: rep.Window, appGap: app.appGap, errors: app.errors, acked: app.acked,
		missing: s.missingOn(tb, newInst.Endpoint.Port), misrouted: len(s.misrouted(tb, newID))}
	var steps []string
	for _, st := range rep.Steps {
		switch st.Step {
		case cutover.StepPause, cutover.StepQuiesce, cutover.StepFence, cutover.StepBarrier, cutover.StepWaitTarget,
			cutover.StepPromote, cutover.StepRegister, cutover.StepSwitch:
			steps = append(steps, fmt.Sprintf("%s %s", st.Step, st.Duration.Round(time.Millisecond)))
		}
	}
	res.steps = strings.Join(steps, ", ")
	return res
}
