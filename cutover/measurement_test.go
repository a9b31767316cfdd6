package cutover_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
)

// TestMeasurementsKept: each journal keeps the newest
// MeasurementsKeptPerPair measurements of a pair, newest first, leaves
// other pairs alone, and replaces a move's measurement recorded again.
func TestMeasurementsKept(t *testing.T) {
	t.Parallel()
	for name, j := range journalsUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := j.(cutover.MeasurementStore)
			at := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
			record := func(move, source string, i int) {
				t.Helper()
				m := cutover.Measurement{Move: move, Kind: cutover.MeasuredMove, Source: source, Target: "pg-b",
					At: at.Add(time.Duration(i) * time.Second), Total: time.Duration(i)}
				if err := store.RecordMeasurement(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			record("other", "pg-c", 0)
			n := cutover.MeasurementsKeptPerPair + 5
			for i := range n {
				record(fmt.Sprintf("m%03d", i), "pg-a", i)
			}
			record("m004", "pg-a", n) // again, now the newest
			got, err := store.Measurements(ctx, &cutover.MeasurementsOpts{Source: "pg-a", Target: "pg-b", Limit: 2 * n})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != cutover.MeasurementsKeptPerPair || got[0].Move != "m004" || got[0].Total != time.Duration(n) ||
				got[1].Move != fmt.Sprintf("m%03d", n-1) || got[len(got)-1].Move != "m006" {
				t.Errorf("kept %d of pg-a->pg-b, newest %v, want %d: m004 again, m%03d, ..., m006", len(got), moves(got[:min(3, len(got))]),
					cutover.MeasurementsKeptPerPair, n-1)
			}
			other, err := store.Measurements(ctx, &cutover.MeasurementsOpts{Source: "pg-c", Target: "pg-b"})
			if err != nil || len(other) != 1 {
				t.Errorf("pg-c->pg-b: %d measurements (%v), want its 1", len(other), err)
			}
		})
	}
}

func moves(ms []cutover.Measurement) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Move)
	}
	return out
}
