package drain

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
)

// PairBasis is what the estimates of the moves from one instance to
// another, or of one instance's conversion, rest on: the rate model the
// Mover gives that pair (cutover.Mover.RateModel), whose Basis says
// whether its samples are the pair's own runs, the fleet's, or none (the
// library's defaults).
type PairBasis struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Convert: a conversion of From into To.
	Convert bool          `json:"convert,omitempty"`
	Basis   cutover.Basis `json:"basis"`
}

func (pb PairBasis) String() string { return pb.pair() + ": " + pb.Basis.String() }

func (pb PairBasis) pair() string {
	if pb.Convert {
		return "convert " + pb.From + " into " + pb.To
	}
	return pb.From + " -> " + pb.To
}

// writeBasis lists what the estimates rest on, pairs with the same
// samples on one line (several targets estimated from the fleet's runs,
// say).
func writeBasis(b *strings.Builder, bases []PairBasis) {
	if len(bases) == 0 {
		return
	}
	b.WriteString("estimates rest on:\n")
	var order []string
	pairs := map[string][]string{}
	for _, pb := range bases {
		basis := pb.Basis.String()
		if _, ok := pairs[basis]; !ok {
			order = append(order, basis)
		}
		pairs[basis] = append(pairs[basis], pb.pair())
	}
	for _, basis := range order {
		fmt.Fprintf(b, "  %s: %s\n", strings.Join(pairs[basis], ", "), basis)
	}
}

// estimator estimates a Runner's plans from its Mover's rate models,
// reading each pair's model once however many moves take the pair.
type estimator struct {
	mover *cutover.Mover
	// reverse: the moves keep a way back (Config.KeepSources).
	reverse bool
	models  map[pairKey]*cutover.RateModel
}

type pairKey struct {
	from, to string
	convert  bool
}

func (r *Runner) estimator() *estimator {
	return &estimator{mover: r.cfg.Mover, reverse: r.cfg.KeepSources, models: map[pairKey]*cutover.RateModel{}}
}

// model is the rate model of from -> to (a conversion's with convert).
func (e *estimator) model(ctx context.Context, from, to string, convert bool) (*cutover.RateModel, error) {
	key := pairKey{from, to, convert}
	if m, ok := e.models[key]; ok {
		return m, nil
	}
	m, err := e.mover.RateModel(ctx, from, to, convert)
	if err != nil {
		return nil, fmt.Errorf("drain: estimate %s: read the rate model: %w", PairBasis{From: from, To: to, Convert: convert}.pair(), err)
	}
	e.models[key] = m
	return m, nil
}

// plan estimates each of p's moves from its pair's model, and the plan
// from them: the moves on p.Concurrency slots.
func (e *estimator) plan(ctx context.Context, p *Plan) error {
	p.Basis = nil
	for i := range p.Moves {
		m := &p.Moves[i]
		model, err := e.model(ctx, m.From, m.To, false)
		if err != nil {
			return err
		}
		est := e.mover.EstimateMove(model, model.ShapeOf(m.Bytes), e.reverse)
		m.Estimate, m.EstimateLow, m.EstimateHigh = est.Total, est.Low, est.High
		p.Basis = addBasis(p.Basis, PairBasis{From: m.From, To: m.To, Basis: model.Basis})
	}
	on := func(d func(*Move) time.Duration) time.Duration {
		return schedule(make([]time.Duration, max(p.Concurrency, 1)), p.Moves, d)
	}
	p.Estimate = on(func(m *Move) time.Duration { return m.Estimate })
	p.EstimateLow = on(func(m *Move) time.Duration { return m.EstimateLow })
	p.EstimateHigh = on(func(m *Move) time.Duration { return m.EstimateHigh })
	return nil
}

// chain estimates each stage's drain, conversion and refill; the chain's
// estimate is their sum, one after another.
func (e *estimator) chain(ctx context.Context, cp *ChainPlan) error {
	cp.Estimate, cp.EstimateLow, cp.EstimateHigh, cp.Basis = 0, 0, 0, nil
	for i := range cp.Stages {
		st := &cp.Stages[i]
		for _, p := range []*Plan{st.Drain, st.Refill} {
			if err := e.plan(ctx, p); err != nil {
				return err
			}
		}
		model, err := e.model(ctx, st.Instance, st.Converted, true)
		if err != nil {
			return err
		}
		st.Convert = e.mover.EstimateConvert(model, st.Remaining.Bytes, int(st.Remaining.Tenants))
		cp.Estimate += st.Drain.Estimate + st.Convert.Total + st.Refill.Estimate
		cp.EstimateLow += st.Drain.EstimateLow + st.Convert.Low + st.Refill.EstimateLow
		cp.EstimateHigh += st.Drain.EstimateHigh + st.Convert.High + st.Refill.EstimateHigh
		for _, pb := range st.Drain.Basis {
			cp.Basis = addBasis(cp.Basis, pb)
		}
		cp.Basis = addBasis(cp.Basis, PairBasis{From: st.Instance, To: st.Converted, Convert: true, Basis: model.Basis})
		for _, pb := range st.Refill.Basis {
			cp.Basis = addBasis(cp.Basis, pb)
		}
	}
	return nil
}

// addBasis appends pb unless its pair is listed.
func addBasis(bases []PairBasis, pb PairBasis) []PairBasis {
	if slices.ContainsFunc(bases, func(b PairBasis) bool { return b.From == pb.From && b.To == pb.To && b.Convert == pb.Convert }) {
		return bases
	}
	return append(bases, pb)
}

// schedule runs the moves in order on slots that free at the given
// times (0 for a free one), each move taking d(move) and starting on the
// slot that frees first, and returns when the last slot frees. It
// updates slots.
func schedule(slots []time.Duration, moves []Move, d func(*Move) time.Duration) time.Duration {
	for i := range moves {
		first := 0
		for k := range slots {
			if slots[k] < slots[first] {
				first = k
			}
		}
		slots[first] += d(&moves[i])
	}
	return slices.Max(slots)
}

// roundEstimate keeps what an estimate can say: tenths of a second under
// a minute, seconds above.
func roundEstimate(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// roundWindow keeps milliseconds: a window is short.
func roundWindow(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
