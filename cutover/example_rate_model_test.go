package cutover_test

import (
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/replica"
)

// A rate model from two rehearsals of different sizes estimates a move
// of a third size, step by step, and says what it rests on. Measurements
// come from the journal (Mover.RateModel) in a real fleet; here they are
// written by hand.
func ExampleRateModel() {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	rehearsal := func(id string, mb int64, copy, index time.Duration) cutover.Measurement {
		return cutover.Measurement{Move: id, Kind: cutover.MeasuredRehearsal, Source: "pg-a", Target: "pg-b", At: at,
			Shape: cutover.Shape{Bytes: mb << 20, Tables: 5, TableBytes: mb << 19, IndexBytes: mb << 18},
			Steps: []cutover.StepTiming{{Step: cutover.StepStream, Duration: 300 * time.Millisecond},
				{Step: cutover.StepCatchUp, Duration: copy + index + 100*time.Millisecond}},
			Phases:      []replica.PhaseTiming{{Phase: replica.PhaseCopy, Duration: copy}, {Phase: replica.PhaseIndexes, Duration: index}},
			CatchUpTail: 100 * time.Millisecond}
	}
	model := cutover.NewRateModel("pg-a->pg-b", []cutover.Measurement{
		rehearsal("r-100mb", 100, 1*time.Second, 500*time.Millisecond),
		rehearsal("r-10mb", 10, 200*time.Millisecond, 140*time.Millisecond),
	})
	e := model.Estimate(cutover.Subject{Shape: cutover.Shape{Bytes: 1000 << 20, Tables: 5, TableBytes: 1000 << 19, IndexBytes: 1000 << 18}},
		[]cutover.Step{cutover.StepStream, cutover.StepCatchUp}, nil, nil)
	// The copy's line through 5 MB in 0.2 s and 50 MB in 1 s gives 9 s
	// at 500 MB; the index build's, 4.1 s at 250 MB; the tail, 0.1 s.
	fmt.Println("catch-up:", e.Step(cutover.StepCatchUp).Estimate.Round(time.Millisecond), "on", e.Step(cutover.StepCatchUp).Samples, "samples")
	fmt.Println("basis:", e.Basis)
	// Output:
	// catch-up: 13.2s on 2 samples
	// basis: 2 measured runs of pg-a->pg-b (2 rehearsals), 2026-11-30 09:00:00 to 2026-11-30 09:00:00: r-100mb, r-10mb
}
