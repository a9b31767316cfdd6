package cutover

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// RateModel estimates how long a run's steps take from the runs measured
// before it (see Measurement): each step's time is fitted, by least
// squares over the samples, as a fixed part plus a part that grows with
// what drives it. The catch-up is the stream's copy (driven by the
// tables' bytes), its index build (the indexes' bytes) and the tail to
// a small lag (the write rate); the schema copy grows with the tables;
// the verification with the bytes; a conversion's copy with the
// instance's bytes; every other step is fixed. A step no sample measured
// takes this library's default. Build one with Mover.RateModel, or
// NewRateModel from measurements of your own.
//
// A model is safe for concurrent use. What it fits does not depend on
// what it estimates, so each fit is made once, on first use: estimating
// the moves of a plan costs a few evaluations of lines per move.
type RateModel struct {
	// Basis says which samples the model rests on.
	Basis   Basis
	samples []Measurement

	mu     sync.Mutex
	fits   map[fitKey]fitted
	spread struct {
		once   sync.Once
		lo, hi float64
	}
}

// fitKey names a fitted term: the step's (or betweenSteps, step ""), the
// index of the term among the step's, and what its terms depend on.
type fitKey struct {
	step    Step
	term    int
	convert bool
	verify  replica.VerifyLevel
}

// fitted is a term's line, the range of its samples about it, and how
// many there were.
type fitted struct {
	a, b, lo, hi float64
	n            int
}

// Basis is what a RateModel rests on.
type Basis struct {
	// Scope is the instance pair ("pg-a->pg-b") whose runs the samples
	// are, "fleet" for the fleet's newest runs, or "" with no samples.
	Scope string `json:"scope"`
	// Samples, of which Rehearsals, Moves and Conversions.
	Samples     int `json:"samples"`
	Rehearsals  int `json:"rehearsals"`
	Moves       int `json:"moves"`
	Conversions int `json:"conversions"`
	// Newest and Oldest sample's time.
	Newest time.Time `json:"newest,omitzero"`
	Oldest time.Time `json:"oldest,omitzero"`
	// IDs of the samples, newest first.
	IDs []string `json:"ids,omitempty"`
}

// String says it in a line.
func (b Basis) String() string {
	if b.Samples == 0 {
		return "no measured runs: this library's defaults (rehearse to measure yours)"
	}
	var kinds []string
	for _, k := range []struct {
		n    int
		name string
	}{{b.Rehearsals, "rehearsal"}, {b.Moves, "move"}, {b.Conversions, "conversion"}} {
		switch {
		case k.n == 1:
			kinds = append(kinds, "1 "+k.name)
		case k.n > 1:
			kinds = append(kinds, fmt.Sprintf("%d %ss", k.n, k.name))
		}
	}
	ids := b.IDs
	more := ""
	if len(ids) > 3 {
		ids, more = ids[:3], fmt.Sprintf(" and %d more", len(b.IDs)-3)
	}
	return fmt.Sprintf("%d measured runs of %s (%s), %s to %s: %s%s", b.Samples, b.Scope, strings.Join(kinds, ", "),
		b.Oldest.UTC().Format(time.DateTime), b.Newest.UTC().Format(time.DateTime), strings.Join(ids, ", "), more)
}

// RateModel tunables.
const (
	// RateModelSamplesDefault is how many of the newest runs a model
	// rests on.
	RateModelSamplesDefault = 20
	// RateModelMinSamples is how many runs of an instance pair it takes
	// to estimate from that pair alone; with fewer, the fleet's newest
	// runs are the samples.
	RateModelMinSamples = 2
)

// RateModel is the model for runs from source to target (IDs in the
// catalog), from the journal's measurements (MeasurementStore): the
// pair's newest runs when it has RateModelMinSamples, else the fleet's.
// convert selects conversions instead of moves and rehearsals. A
// Journal that keeps no measurements gives the defaults' model.
func (m *Mover) RateModel(ctx context.Context, source, target string, convert bool) (*RateModel, error) {
	store, ok := m.cfg.Journal.(MeasurementStore)
	if !ok {
		return NewRateModel("", nil), nil
	}
	kinds := []string{MeasuredMove, MeasuredRehearsal}
	if convert {
		kinds = []string{MeasuredConvert}
	}
	pair, err := store.Measurements(ctx, &MeasurementsOpts{Source: source, Target: target, Kinds: kinds, Limit: RateModelSamplesDefault})
	if err != nil {
		return nil, err
	}
	if len(pair) >= RateModelMinSamples {
		return NewRateModel(source+"->"+target, pair), nil
	}
	fleetWide, err := store.Measurements(ctx, &MeasurementsOpts{Kinds: kinds, Limit: RateModelSamplesDefault})
	if err != nil {
		return nil, err
	}
	if len(fleetWide) == 0 {
		return NewRateModel("", nil), nil
	}
	return NewRateModel("fleet", fleetWide), nil
}

// NewRateModel is the model of samples, newest first; scope names them
// (see Basis.Scope).
func NewRateModel(scope string, samples []Measurement) *RateModel {
	b := Basis{Scope: scope, Samples: len(samples)}
	for i, s := range samples {
		switch s.Kind {
		case MeasuredRehearsal:
			b.Rehearsals++
		case MeasuredConvert:
			b.Conversions++
		default:
			b.Moves++
		}
		b.IDs = append(b.IDs, s.Move)
		if i == 0 || s.At.After(b.Newest) {
			b.Newest = s.At
		}
		if i == 0 || s.At.Before(b.Oldest) {
			b.Oldest = s.At
		}
	}
	return &RateModel{Basis: b, samples: slices.Clone(samples), fits: map[fitKey]fitted{}}
}

// Subject is what an estimate is of: the shape of the data, how many
// tenants the window holds, and the verification level.
type Subject struct {
	Shape   Shape
	Tenants int
	Verify  replica.VerifyLevel
	// Convert: a conversion (its copy grows with Shape.Bytes, the
	// instance's).
	Convert bool
}

// Estimate is a run's estimated time from a RateModel, step by step.
type Estimate struct {
	Steps []StepEstimate `json:"steps"`
	// Total is the sum of the steps and of the time between them (the
	// journal's writes, the window's opening: what the samples' totals
	// held beyond their steps); Low and High the range the samples'
	// spread about the model puts it in.
	Total time.Duration `json:"total_ns"`
	Low   time.Duration `json:"low_ns"`
	High  time.Duration `json:"high_ns"`
	// Window is the sum of the window's steps, with its range.
	Window     time.Duration `json:"window_ns"`
	WindowLow  time.Duration `json:"window_low_ns"`
	WindowHigh time.Duration `json:"window_high_ns"`
	Basis      Basis         `json:"basis"`
}

// StepEstimate is one step's estimate.
type StepEstimate struct {
	Step     Step          `json:"step"`
	Estimate time.Duration `json:"estimate_ns"`
	Low      time.Duration `json:"low_ns"`
	High     time.Duration `json:"high_ns"`
	// Samples is how many measured runs the step's estimate rests on: 0
	// for this library's default.
	Samples int `json:"samples"`
	// Window: the step is inside the window.
	Window bool `json:"window,omitempty"`
}

// Step is the estimate of step s; zero when the estimate has no such
// step.
func (e *Estimate) Step(s Step) StepEstimate {
	for _, se := range e.Steps {
		if se.Step == s {
			return se
		}
	}
	return StepEstimate{Step: s}
}

// Remaining is the time left at step s, inStep into it: what is left of
// its estimate (at least atLeast, what the step itself knows it still
// needs), then every later step's.
func (e *Estimate) Remaining(s Step, inStep, atLeast time.Duration) time.Duration {
	var left time.Duration
	after := false
	for _, se := range e.Steps {
		switch {
		case after:
			left += se.Estimate
		case se.Step == s:
			left += max(se.Estimate-inStep, atLeast, 0)
			after = true
		}
	}
	return left
}

// String is a table: each step with its range, and the total.
func (e *Estimate) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "estimate %s (%s to %s), window %s (%s to %s)\n", round(e.Total), round(e.Low), round(e.High),
		round(e.Window), round(e.WindowLow), round(e.WindowHigh))
	fmt.Fprintf(&b, "  basis: %s\n", e.Basis)
	for _, s := range e.Steps {
		basis := fmt.Sprintf("%d samples", s.Samples)
		if s.Samples == 0 {
			basis = "default"
		}
		fmt.Fprintf(&b, "  %-15s %9s  (%s to %s, %s)\n", s.Step, round(s.Estimate), round(s.Low), round(s.High), basis)
	}
	return b.String()
}

// round keeps three significant figures or so.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

// Estimate estimates the steps of a run (before, window and after, as
// its table lists them) for subject.
func (rm *RateModel) Estimate(subject Subject, before, window, after []Step) *Estimate {
	e := &Estimate{Basis: rm.Basis}
	add := func(steps []Step, inWindow bool) {
		for _, s := range steps {
			se := rm.stepEstimate(s, subject)
			se.Window = inWindow
			e.Steps = append(e.Steps, se)
			e.Total += se.Estimate
			if inWindow {
				e.Window += se.Estimate
				e.WindowLow += se.Low
				e.WindowHigh += se.High
			}
		}
	}
	add(before, false)
	add(window, true)
	add(after, false)
	if len(e.Steps) > 0 {
		between, _, _, _ := rm.evaluate(fitKey{}, betweenSteps, subject)
		e.Total += between
	}
	lo, hi := rm.totalSpread()
	e.Low, e.High = scale(e.Total, lo), scale(e.Total, hi)
	return e
}

// totalSpread is the range of the total: how far each sample's own
// total was from what the model says of it, applied to the estimate.
// The steps' ranges summed would count every step's worst case at once.
// A rehearsal's total holds the drop of its copy, which no move has: its
// steps are compared.
func (rm *RateModel) totalSpread() (lo, hi float64) {
	rm.spread.once.Do(func() {
		rm.spread.lo, rm.spread.hi = rm.spreadOf(func(m *Measurement) (float64, float64) {
			var pred, steps time.Duration
			for _, t := range m.Steps {
				pred += rm.stepEstimate(t.Step, m.subject()).Estimate
				steps += t.Duration
			}
			if m.Kind == MeasuredRehearsal {
				return steps.Seconds(), pred.Seconds()
			}
			between, _, _, _ := rm.evaluate(fitKey{}, betweenSteps, m.subject())
			return m.Total.Seconds(), (pred + between).Seconds()
		})
	})
	return rm.spread.lo, rm.spread.hi
}

// spreadOf is the range of actual/predicted - 1 over the samples, at
// least ±spreadFloor, wider with fewer samples.
func (rm *RateModel) spreadOf(pair func(m *Measurement) (actual, predicted float64)) (lo, hi float64) {
	floor := spreadFloor(len(rm.samples))
	lo, hi = -floor, floor
	for i := range rm.samples {
		a, p := pair(&rm.samples[i])
		if p <= 0 || a <= 0 {
			continue
		}
		r := a/p - 1
		lo, hi = min(lo, r), max(hi, r)
	}
	return max(lo, -0.9), hi
}

// spreadFloor: ±10% with several samples; ±50% with none, one or two,
// where the spread says nothing.
func spreadFloor(n int) float64 {
	if n < 3 {
		return 0.5
	}
	return 0.1
}

func scale(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * (1 + r))
}

// subject is what the model says of a measured run. Its write rate is
// the one measured over the run (a run reads its shape without sampling
// one), as a dry run's is sampled: the catch-up's tail is fitted
// against it.
func (m *Measurement) subject() Subject {
	shape := m.Shape
	if shape.ChangesPerSecond == 0 {
		shape.ChangesPerSecond = m.ChangesPerSecond
	}
	return Subject{Shape: shape, Tenants: max(m.Tenants, 1), Verify: m.Verify, Convert: m.Kind == MeasuredConvert}
}

// betweenSteps is the time of a run outside its steps: the journal's
// writes before and after each, and the window's opening (its admin
// sessions, the stream's readiness). A rehearsal's is not measured: its
// total holds the drop of its copy.
var betweenSteps = term{x: func(Subject) float64 { return 1 }, defFixed: 0.1, y: func(m *Measurement) (float64, bool) {
	if m.Kind == MeasuredRehearsal || len(m.Steps) == 0 {
		return 0, false
	}
	var steps time.Duration
	for _, t := range m.Steps {
		steps += t.Duration
	}
	return max(m.Total-steps, 0).Seconds(), true
}}

// term is one fitted part of a step: seconds = fixed + perUnit × x.
type term struct {
	// x is what drives it, for a subject (1 for a fixed part).
	x func(Subject) float64
	// y is the part's seconds in a measured run; ok false when the run
	// did not measure it.
	y func(*Measurement) (float64, bool)
	// def is the default: fixed seconds and seconds per unit of x.
	defFixed, defPerUnit float64
}

// stepEstimate fits the step's terms and adds them.
func (rm *RateModel) stepEstimate(s Step, subj Subject) StepEstimate {
	se := StepEstimate{Step: s}
	terms := stepTerms(s, subj)
	for i, t := range terms {
		est, lo, hi, n := rm.evaluate(fitKey{step: s, term: i, convert: subj.Convert, verify: subj.Verify}, t, subj)
		se.Estimate += est
		se.Low += lo
		se.High += hi
		if n > se.Samples {
			se.Samples = n
		}
	}
	return se
}

// evaluate is term t (named by key) at subj, with its range.
func (rm *RateModel) evaluate(key fitKey, t term, subj Subject) (est, lo, hi time.Duration, n int) {
	f := rm.fitted(key, t)
	est = seconds(max(f.a+f.b*t.x(subj), 0))
	return est, scale(est, f.lo), scale(est, f.hi), f.n
}

// fitted fits t over the samples that measured it, once per key.
func (rm *RateModel) fitted(key fitKey, t term) fitted {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if f, ok := rm.fits[key]; ok {
		return f
	}
	var xs, ys []float64
	for i := range rm.samples {
		m := &rm.samples[i]
		y, ok := t.y(m)
		if !ok {
			continue
		}
		xs, ys = append(xs, t.x(m.subject())), append(ys, y)
	}
	f := fitted{n: len(xs)}
	f.a, f.b = fitLine(xs, ys, t.defFixed, t.defPerUnit)
	f.lo, f.hi = -spreadFloor(len(xs)), spreadFloor(len(xs))
	for i := range xs {
		if p := f.a + f.b*xs[i]; p > 0 {
			r := ys[i]/p - 1
			f.lo, f.hi = min(f.lo, r), max(f.hi, r)
		}
	}
	f.lo = max(f.lo, -0.9)
	if rm.fits == nil { // a RateModel not made by NewRateModel
		rm.fits = map[fitKey]fitted{}
	}
	rm.fits[key] = f
	return f
}

// fitLine is the least-squares line y = a + b·x with a, b ≥ 0. With no
// points it is the default. Points whose x hardly differ (less than a
// quarter of their mean apart, typically) say nothing of the slope: the
// default line is then scaled to pass through their mean, keeping its
// split between the fixed part and the part per unit, so that one small
// sample does not make every unit as dear as its fixed costs were. A
// fixed term (no default per unit) is the mean.
func fitLine(xs, ys []float64, defA, defB float64) (a, b float64) {
	n := float64(len(xs))
	if n == 0 {
		return defA, defB
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	mx, my := sx/n, sy/n
	varX := sxx/n - mx*mx
	if varX <= 1e-9*math.Max(mx*mx, 1) || math.Sqrt(varX) < mx/4 {
		if mx == 0 || defB == 0 {
			return my, 0
		}
		k := my / (defA + defB*mx)
		return k * defA, k * defB
	}
	b = (sxy/n - mx*my) / varX
	a = my - b*mx
	switch {
	case b < 0:
		return my, 0
	case a < 0:
		return 0, sxy / sxx
	}
	return a, b
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Defaults, for a step no sample measured: this library's runs on a
// 2-core machine with local disks (the quickstart's move of a 2 MB
// tenant, the copy benchmarks for the rates, and
// BenchmarkEstimateAccuracy's moves of 25 MB to 1 GB for the steps a
// rehearsal does not run: the reverse stream's, the fence, the switch,
// finishing the stream, none of which grows with the data).
var defaultStepSeconds = map[Step]float64{
	StepPreflight: 0.15, StepStream: 0.5, StepReversePrepare: 0.02,
	StepPause: 0.002, StepQuiesce: 0.015, StepFence: 0.015, StepBarrier: 0.002, StepWaitTarget: 0.005,
	StepSyncSequences: 0.005, StepSnapshot: 0.01, StepReverseStart: 0.001, StepSwitch: 0.001,
	StepCatalog: 0.002, StepFinishStream: 0.05, StepReverse: 0.08,
}

// stepTerms are the parts a step's time is fitted as.
func stepTerms(s Step, subj Subject) []term {
	fixed := func(def float64) term {
		return term{x: func(Subject) float64 { return 1 }, y: stepSeconds(s), defFixed: def}
	}
	perTenant := func(def float64) term {
		return term{x: func(s Subject) float64 { return float64(max(s.Tenants, 1)) }, y: stepSeconds(s), defFixed: def}
	}
	switch s {
	case StepStream:
		if subj.Convert {
			return []term{fixed(1)}
		}
		// The schema's dump and restore.
		return []term{{x: func(s Subject) float64 { return float64(s.Shape.Tables) }, y: stepSeconds(s), defFixed: 0.4, defPerUnit: 0.01}}
	case StepCatchUp:
		if subj.Convert {
			return []term{{x: func(s Subject) float64 { return float64(s.Shape.Bytes) }, y: stepSeconds(s), defFixed: 2, defPerUnit: 1.0 / CopyRateEstimate}}
		}
		return catchUpTerms()
	case StepVerify:
		level := subj.Verify
		rate := map[replica.VerifyLevel]float64{replica.VerifyCounts: VerifyCountsRateEstimate, replica.VerifyChecksums: VerifyChecksumsRateEstimate}[level]
		if rate == 0 {
			return []term{{x: func(Subject) float64 { return 1 }, y: func(*Measurement) (float64, bool) { return 0, false }}}
		}
		return []term{{x: func(s Subject) float64 { return float64(s.Shape.Bytes) },
			y: func(m *Measurement) (float64, bool) {
				if m.Verify != level {
					return 0, false
				}
				return stepSeconds(StepVerify)(m)
			}, defFixed: 0.02, defPerUnit: 1 / rate}}
	case StepPause, StepQuiesce, StepFence, StepBarrier, StepWaitTarget, StepSyncSequences, StepSnapshot, StepSwitch, StepCatalog:
		return []term{perTenant(defaultStepSeconds[s])}
	}
	return []term{fixed(defaultStepSeconds[s])}
}

// catchUpTerms: the stream's copy, its index build and the tail to a
// small lag, each fitted apart from the phases the stream timed; a run
// whose stream timed none (a Provider that does not report
// Progress.Phases) is left out of the catch-up's fit.
func catchUpTerms() []term {
	phase := func(p replica.Phase) func(*Measurement) (float64, bool) {
		return func(m *Measurement) (float64, bool) {
			if len(m.Phases) == 0 || m.Step(StepCatchUp) == 0 {
				return 0, false
			}
			return m.Phase(p).Seconds(), true
		}
	}
	return []term{
		{x: func(s Subject) float64 { return float64(s.Shape.TableBytes) }, y: phase(replica.PhaseCopy),
			defFixed: 0.2, defPerUnit: 1.0 / CopyRateEstimate},
		{x: func(s Subject) float64 { return float64(s.Shape.IndexBytes) }, y: phase(replica.PhaseIndexes),
			defFixed: 0.1, defPerUnit: 1.0 / CopyRateEstimate},
		{x: func(s Subject) float64 { return s.Shape.ChangesPerSecond }, y: func(m *Measurement) (float64, bool) {
			if len(m.Phases) == 0 || m.Step(StepCatchUp) == 0 {
				return 0, false
			}
			return m.CatchUpTail.Seconds(), true
		}, defFixed: 0.3, defPerUnit: 0.001},
	}
}

// stepSeconds reads a step's time from a run that ran it.
func stepSeconds(s Step) func(*Measurement) (float64, bool) {
	return func(m *Measurement) (float64, bool) {
		for _, t := range m.Steps {
			if t.Step == s && t.Err == "" {
				return m.Step(s).Seconds(), true
			}
		}
		return 0, false
	}
}

// EstimateMove estimates a move by this mover of a tenant of the given
// shape (ShapeOf infers one from bytes alone), with a reverse stream or
// not, from model: for plans of many moves, such as a drain's, whose
// tenants are measured by their size only.
func (m *Mover) EstimateMove(model *RateModel, shape Shape, reverse bool) *Estimate {
	p := plan{Move: "estimate", Verify: m.cfg.Verify, Reverse: reverse && m.reverseWanted()}
	r := m.newRun(p, []fleet.Tenant{{}}, fleet.Instance{}, fleet.Instance{})
	return r.estimate(model, shape)
}

// ShapeOf is the shape of a tenant of bytes (pg_database_size) as the
// model's samples are: their tables' and indexes' share of the bytes
// above an empty database's, and their median number of tables. Without
// samples, a third of those bytes is taken as index.
func (rm *RateModel) ShapeOf(bytes int64) Shape {
	var over, tableBytes, indexBytes float64
	var tables []int
	for i := range rm.samples {
		s := rm.samples[i].Shape
		if rm.samples[i].Kind == MeasuredConvert || s.Bytes <= emptyDatabaseBytes {
			continue
		}
		over += float64(s.Bytes - emptyDatabaseBytes)
		tableBytes += float64(s.TableBytes)
		indexBytes += float64(s.IndexBytes)
		tables = append(tables, s.Tables)
	}
	data := float64(max(bytes-emptyDatabaseBytes, 0))
	if over == 0 {
		return Shape{Bytes: bytes, Tables: 10, TableBytes: int64(data * 2 / 3), IndexBytes: int64(data / 3)}
	}
	slices.Sort(tables)
	return Shape{Bytes: bytes, Tables: tables[len(tables)/2],
		TableBytes: int64(data * tableBytes / over), IndexBytes: int64(data * indexBytes / over)}
}

// emptyDatabaseBytes is about what pg_database_size says of a database
// with nothing in it: its catalogs.
const emptyDatabaseBytes = 7_500_000

// EstimateConvert estimates a conversion by this mover of an instance
// of bytes (every database's) holding tenants, from model (a model of
// conversions: Mover.RateModel with convert true).
func (m *Mover) EstimateConvert(model *RateModel, bytes int64, tenants int) *Estimate {
	p := plan{Kind: kindConvert, Move: "estimate"}
	r := m.newRun(p, make([]fleet.Tenant, max(tenants, 1)), fleet.Instance{}, fleet.Instance{})
	return r.estimate(model, Shape{Bytes: bytes})
}
