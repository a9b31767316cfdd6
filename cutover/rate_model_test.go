package cutover_test

import (
	"math"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/replica"
)

// measured is a hand-made measurement of a move of bytes whose steps
// took the given seconds.
func measured(id, kind string, at time.Time, bytes int64, steps map[cutover.Step]float64) cutover.Measurement {
	m := cutover.Measurement{Move: id, Kind: kind, Source: "pg-a", Target: "pg-b", At: at, Tenants: 1,
		Shape: cutover.Shape{Bytes: bytes, Tables: 5, TableBytes: bytes * 2 / 3, IndexBytes: bytes / 3}, Verify: replica.VerifyCounts}
	for s, sec := range steps {
		m.Steps = append(m.Steps, cutover.StepTiming{Step: s, Duration: time.Duration(sec * float64(time.Second))})
		m.Total += time.Duration(sec * float64(time.Second))
	}
	return m
}

func estimateOf(model *cutover.RateModel, bytes int64, steps ...cutover.Step) *cutover.Estimate {
	return model.Estimate(cutover.Subject{Shape: cutover.Shape{Bytes: bytes, Tables: 5, TableBytes: bytes * 2 / 3, IndexBytes: bytes / 3},
		Tenants: 1, Verify: replica.VerifyCounts}, steps, nil, nil)
}

func near(got time.Duration, want float64) bool {
	return math.Abs(got.Seconds()-want) <= 1e-3*math.Max(want, 1e-3)
}

// TestRateModelFitsTheSamples: a step driven by the bytes, measured by
// runs on a line, is estimated on that line, inside and beyond the
// samples; one measured faster at a larger size is not extrapolated to
// a shorter (or negative) time for a larger one; a fixed step is the
// samples' typical time; a step no run measured takes the default; and
// the basis counts the samples by kind.
func TestRateModelFitsTheSamples(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	const mb = 1 << 20
	// verify = 0.5 s + 1 s per 100 MB; fence a fixed 0.2 s in moves only.
	line := func(bytes int64) float64 { return 0.5 + float64(bytes)/(100*mb) }
	samples := []cutover.Measurement{
		measured("move-2", cutover.MeasuredMove, at.Add(2*time.Hour), 400*mb,
			map[cutover.Step]float64{cutover.StepVerify: line(400 * mb), cutover.StepFence: 0.2}),
		measured("rehearsal-1", cutover.MeasuredRehearsal, at.Add(time.Hour), 100*mb,
			map[cutover.Step]float64{cutover.StepVerify: line(100 * mb)}),
		measured("move-1", cutover.MeasuredMove, at, 10*mb,
			map[cutover.Step]float64{cutover.StepVerify: line(10 * mb), cutover.StepFence: 0.2}),
	}
	model := cutover.NewRateModel("pg-a->pg-b", samples)

	b := model.Basis
	if b.Scope != "pg-a->pg-b" || b.Samples != 3 || b.Moves != 2 || b.Rehearsals != 1 || b.Conversions != 0 ||
		!b.Newest.Equal(at.Add(2*time.Hour)) || !b.Oldest.Equal(at) || len(b.IDs) != 3 || b.IDs[0] != "move-2" {
		t.Errorf("basis %+v, want 3 samples of pg-a->pg-b (2 moves, 1 rehearsal), move-2 the newest", b)
	}

	for _, bytes := range []int64{10 * mb, 50 * mb, 1000 * mb} {
		e := estimateOf(model, bytes, cutover.StepVerify, cutover.StepFence, cutover.StepSwitch)
		if v := e.Step(cutover.StepVerify); !near(v.Estimate, line(bytes)) || v.Samples != 3 {
			t.Errorf("%d MB: verify %s on %d samples, want %.3fs on 3 (the samples' line)", bytes/mb, v.Estimate, v.Samples, line(bytes))
		}
		if f := e.Step(cutover.StepFence); !near(f.Estimate, 0.2) || f.Samples != 2 {
			t.Errorf("%d MB: fence %s on %d samples, want 200ms on the 2 moves", bytes/mb, f.Estimate, f.Samples)
		}
		if s := e.Step(cutover.StepSwitch); s.Samples != 0 || s.Estimate <= 0 {
			t.Errorf("%d MB: switch %s on %d samples, want the default on none", bytes/mb, s.Estimate, s.Samples)
		}
		if want := e.Step(cutover.StepVerify).Estimate + e.Step(cutover.StepFence).Estimate + e.Step(cutover.StepSwitch).Estimate; e.Total != want {
			t.Errorf("%d MB: total %s, want the steps' sum %s", bytes/mb, e.Total, want)
		}
		if e.Low > e.Total || e.High < e.Total {
			t.Errorf("%d MB: total %s outside its range %s..%s", bytes/mb, e.Total, e.Low, e.High)
		}
	}

	// Two samples on the line give back the line.
	two := cutover.NewRateModel("pg-a->pg-b", samples[:2])
	if v := estimateOf(two, 1000*mb, cutover.StepVerify).Step(cutover.StepVerify); !near(v.Estimate, line(1000*mb)) {
		t.Errorf("from 2 samples on the line, verify of 1000 MB is %s, want %.3fs", v.Estimate, line(1000*mb))
	}

	// Larger and faster: no negative slope, so no estimate under the
	// fastest sample, nor one that shrinks with the size.
	odd := cutover.NewRateModel("pg-a->pg-b", []cutover.Measurement{
		measured("big-fast", cutover.MeasuredMove, at, 400*mb, map[cutover.Step]float64{cutover.StepVerify: 1}),
		measured("small-slow", cutover.MeasuredMove, at, 10*mb, map[cutover.Step]float64{cutover.StepVerify: 3}),
	})
	small := estimateOf(odd, 10*mb, cutover.StepVerify).Step(cutover.StepVerify).Estimate
	huge := estimateOf(odd, 10_000*mb, cutover.StepVerify).Step(cutover.StepVerify).Estimate
	if huge < small || huge < time.Second || small > 3*time.Second {
		t.Errorf("from samples larger-is-faster: verify %s at 10 MB, %s at 10 GB; want a non-negative slope within the samples' 1s..3s", small, huge)
	}

	// No samples: the defaults, and a basis that says so.
	none := cutover.NewRateModel("", nil)
	if e := estimateOf(none, 100*mb, cutover.StepVerify); e.Basis.Samples != 0 || e.Step(cutover.StepVerify).Samples != 0 || e.Total <= 0 {
		t.Errorf("without samples: %+v, want the defaults' estimate on no samples", e)
	}
}

// TestRateModelCatchUpPhases: the catch-up is fitted phase by phase: the
// copy against the tables' bytes, the index build against the indexes'
// bytes, the tail as the samples' typical tail.
func TestRateModelCatchUpPhases(t *testing.T) {
	t.Parallel()
	const mb = 1 << 20
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	// copy: 0.1 s + 1 s per 50 MB of table; indexes: 0.05 s + 1 s per 20
	// MB of index; tail 0.4 s.
	catchUp := func(id string, table, index int64) cutover.Measurement {
		cp := 0.1 + float64(table)/(50*mb)
		ix := 0.05 + float64(index)/(20*mb)
		m := measured(id, cutover.MeasuredRehearsal, at, table+index, map[cutover.Step]float64{cutover.StepCatchUp: cp + ix + 0.4})
		m.Shape.TableBytes, m.Shape.IndexBytes = table, index
		m.Phases = []replica.PhaseTiming{{Phase: replica.PhaseCopy, Duration: seconds(cp)}, {Phase: replica.PhaseIndexes, Duration: seconds(ix)}}
		m.CatchUpTail = seconds(0.4)
		return m
	}
	// Index shares differ between samples, so that the two parts can be
	// told apart only by fitting each against its own bytes.
	model := cutover.NewRateModel("pg-a->pg-b", []cutover.Measurement{
		catchUp("r1", 10*mb, 1*mb), catchUp("r2", 100*mb, 60*mb), catchUp("r3", 300*mb, 40*mb),
	})
	table, index := int64(600*mb), int64(300*mb)
	want := 0.1 + 600.0/50 + 0.05 + 300.0/20 + 0.4
	e := model.Estimate(cutover.Subject{Shape: cutover.Shape{Bytes: table + index, Tables: 5, TableBytes: table, IndexBytes: index}, Tenants: 1},
		[]cutover.Step{cutover.StepCatchUp}, nil, nil)
	if c := e.Step(cutover.StepCatchUp); !near(c.Estimate, want) || c.Samples != 3 {
		t.Errorf("catch-up of 600 MB of table and 300 MB of index: %s on %d samples, want %.2fs on 3", c.Estimate, c.Samples, want)
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// TestRateModelTotalAndTail: a move's total holds the time between its
// steps (the journal's writes), as measured moves' totals did, and not
// the drop of a rehearsal's copy; the catch-up's tail grows with the
// write rate the samples measured over their runs.
func TestRateModelTotalAndTail(t *testing.T) {
	t.Parallel()
	const mb = 1 << 20
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	// Tail: 0.1 s + 1 s per 500 changes/s; 0.25 s between the steps.
	run := func(id, kind string, changes float64) cutover.Measurement {
		tail := 0.1 + changes/500
		m := measured(id, kind, at, 100*mb, map[cutover.Step]float64{cutover.StepCatchUp: 1 + tail, cutover.StepFence: 0.02})
		m.Phases = []replica.PhaseTiming{{Phase: replica.PhaseCopy, Duration: seconds(0.6)}, {Phase: replica.PhaseIndexes, Duration: seconds(0.4)}}
		m.CatchUpTail, m.ChangesPerSecond = seconds(tail), changes
		m.Total += seconds(0.25)
		if kind == cutover.MeasuredRehearsal {
			m.Total += 5 * time.Second // dropping its copy
		}
		return m
	}
	model := cutover.NewRateModel("pg-a->pg-b", []cutover.Measurement{
		run("m1", cutover.MeasuredMove, 100), run("m2", cutover.MeasuredMove, 400), run("r1", cutover.MeasuredRehearsal, 250),
	})
	shape := cutover.Shape{Bytes: 100 * mb, Tables: 5, TableBytes: 100 * mb * 2 / 3, IndexBytes: 100 * mb / 3, ChangesPerSecond: 1000}
	e := model.Estimate(cutover.Subject{Shape: shape, Tenants: 1, Verify: replica.VerifyCounts},
		[]cutover.Step{cutover.StepCatchUp}, []cutover.Step{cutover.StepFence}, nil)
	wantCatchUp := 1 + 0.1 + 1000.0/500
	if c := e.Step(cutover.StepCatchUp).Estimate; !near(c, wantCatchUp) {
		t.Errorf("catch-up at 1,000 changes/s: %s, want %.2fs (the tail on the samples' write rates)", c, wantCatchUp)
	}
	if want := e.Step(cutover.StepCatchUp).Estimate + e.Step(cutover.StepFence).Estimate + seconds(0.25); !near(e.Total, want.Seconds()) {
		t.Errorf("total %s, want the steps' %s and the moves' 250ms between them", e.Total, want-seconds(0.25))
	}
}
