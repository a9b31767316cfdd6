package cutover_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// BenchmarkCutoverWindow moves one tenant back and forth under a write
// load of 4 connections through the Router, and reports the window as
// the application saw it (the longest gap between acknowledged writes
// around each move), p50, p95 and max, with application errors; and, in
// the same run, the same moves with a naive switch: no route pause and no
// drain, so the fence ends the application's sessions and it reconnects
// to whatever the route says. Goal: p50 under 250 ms, max under 1 s, zero
// errors and zero missing writes with the Router.
//
//	go test ./cutover -run '^$' -bench CutoverWindow -benchtime 1x
//
// DAISYCHAIN_BENCH_MOVES sets the moves per mode (default 6).
func BenchmarkCutoverWindow(b *testing.B) {
	moves := 6
	if v, err := strconv.Atoi(os.Getenv("DAISYCHAIN_BENCH_MOVES")); err == nil && v > 0 {
		moves = v
	}
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.AddTenant(ctx, "acme", "acme", "pg-a", shopSchema); err != nil {
		b.Fatal(err)
	}
	modes := []struct {
		name string
		cfg  cutover.Config
	}{
		{"router", cutover.Config{}},
		{"naive", cutover.Config{NoRoutePause: true, DrainGrace: -1}},
	}
	for b.Loop() {
		for _, mode := range modes {
			cfg := mode.cfg
			cfg.WindowBudget = 30 * time.Second
			mover, err := f.Mover(&cfg)
			if err != nil {
				b.Fatal(err)
			}
			w := cutovertest.StartWorkload(f.Router, "acme", 4)
			var gaps, lib []time.Duration
			var missing int64
			for i := range moves {
				tn, err := f.Catalog.Locate(ctx, "acme")
				if err != nil {
					b.Fatal(err)
				}
				target := map[string]string{"pg-a": "pg-b", "pg-b": "pg-a"}[tn.Instance]
				time.Sleep(200 * time.Millisecond)
				w.ResetGap()
				id := mode.name + "-" + strconv.Itoa(i)
				rep, err := mover.Move(ctx, cutover.Request{ID: id, Tenant: "acme", Target: target})
				if err != nil {
					b.Fatalf("%s move %d: %v", mode.name, i, err)
				}
				time.Sleep(200 * time.Millisecond)
				gaps = append(gaps, w.Stats().MaxGap)
				lib = append(lib, rep.Window)
				if err := mover.Retire(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
			stats := w.Stop()
			tn, _ := f.Catalog.Locate(ctx, "acme")
			conn, err := f.Instances[tn.Instance].Connect(ctx, "acme")
			if err != nil {
				b.Fatal(err)
			}
			missing, err = w.Missing(ctx, conn)
			conn.Close(ctx)
			if err != nil {
				b.Fatal(err)
			}
			slices.Sort(gaps)
			slices.Sort(lib)
			b.ReportMetric(ms(pct(gaps, 50)), mode.name+"-p50-ms")
			b.ReportMetric(ms(pct(gaps, 95)), mode.name+"-p95-ms")
			b.ReportMetric(ms(gaps[len(gaps)-1]), mode.name+"-max-ms")
			b.ReportMetric(ms(pct(lib, 50)), mode.name+"-library-p50-ms")
			b.ReportMetric(float64(stats.Errors), mode.name+"-app-errors")
			b.ReportMetric(float64(missing), mode.name+"-missing")
			b.Logf("%s: %d moves, app window p50 %s p95 %s max %s, library p50 %s, %d acknowledged writes, %d errors, %d missing",
				mode.name, moves, pct(gaps, 50), pct(gaps, 95), gaps[len(gaps)-1], pct(lib, 50),
				stats.Acknowledged, stats.Errors, missing)
		}
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
