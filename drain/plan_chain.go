package drain

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/internal/bytesize"
)

// ChainPlan is what a chain would do, stage by stage: planned on a
// snapshot that each stage's moves and conversion are applied to, so the
// later stages see the earlier ones.
type ChainPlan struct {
	Stages []ChainStagePlan
	// PeakSpare is the most the spares hold together at any point.
	PeakSpare Totals
	// Estimate is the chain's time, EstimateLow to EstimateHigh: each
	// stage's drain, conversion and refill, one after another.
	// Runner.DryRunChain estimates from the Mover's rate models; PlanChain
	// leaves the estimates zero and Basis empty.
	Estimate, EstimateLow, EstimateHigh time.Duration
	// Basis is what the estimates rest on: each instance pair's rate
	// model, and each conversion's.
	Basis []PairBasis
}

// ChainStagePlan is one instance's stage.
type ChainStagePlan struct {
	Instance, Converted string
	Drain, Refill       *Plan
	// Remaining is what the instance holds when it is converted.
	Remaining Totals
	// Convert is the conversion's estimate (cutover.Mover.EstimateConvert
	// of Remaining), nil until the plan is estimated.
	Convert *cutover.Estimate
}

// PlanChain plans a chain (see Runner.Chain) on a snapshot, changing
// nothing: for each instance, the drain onto the spares and the instances
// converted so far, the conversion, and the refill from the spares.
func PlanChain(s *Snapshot, req ChainRequest) (*ChainPlan, error) {
	if len(req.Instances) == 0 || len(req.Spares) == 0 || req.Threshold.IsZero() {
		return nil, fmt.Errorf("%w: a chain needs Instances, Spares and a Threshold", ErrInvalid)
	}
	newID := req.NewID
	if newID == nil {
		newID = func(old string) string { return old + ".1" }
	}
	cp := &ChainPlan{}
	var converted []string
	for _, inst := range req.Instances {
		keep := append(append(slices.Clone(req.Spares), converted...), inst)
		var exclude []string
		for _, iu := range s.Instances {
			if !slices.Contains(keep, iu.Instance.ID) {
				exclude = append(exclude, iu.Instance.ID)
			}
		}
		stage := ChainStagePlan{Instance: inst, Converted: newID(inst)}
		var err error
		if stage.Drain, err = PlanDrain(s, inst, req.Threshold, &DrainOpts{Exclude: exclude}); err != nil {
			return cp, fmt.Errorf("drain: chain stage %s: %w", inst, err)
		}
		s = applyMoves(s, stage.Drain.Moves)
		cp.PeakSpare = maxTotals(cp.PeakSpare, s.totalsOf(req.Spares))
		stage.Remaining = s.find(inst).Totals()
		s = s.renamed(inst, stage.Converted)
		converted = append(converted, stage.Converted)
		if stage.Refill, err = PlanRefill(s, stage.Converted, req.Spares, Threshold{}, nil); err != nil {
			return cp, fmt.Errorf("drain: chain stage %s: refill: %w", inst, err)
		}
		s = applyMoves(s, stage.Refill.Moves)
		cp.Stages = append(cp.Stages, stage)
	}
	return cp, nil
}

// DryRunChain measures the fleet and returns the plan of a chain,
// estimated from the Mover's rate models, changing nothing.
func (r *Runner) DryRunChain(ctx context.Context, req ChainRequest) (*ChainPlan, error) {
	s, err := r.measure(ctx, append(slices.Clone(req.Instances), req.Spares...))
	if err != nil {
		return nil, err
	}
	cp, err := PlanChain(s, req)
	if err != nil {
		return cp, err
	}
	return cp, r.estimator().chain(ctx, cp)
}

// String is the chain's dry-run report: each stage's moves and
// conversion, with their estimates once estimated, and what the
// estimates rest on.
func (cp *ChainPlan) String() string {
	var b strings.Builder
	estimated := len(cp.Basis) > 0
	about := func(d, low, high time.Duration) string {
		if !estimated {
			return ""
		}
		return fmt.Sprintf(", about %s (%s to %s)", roundEstimate(d), roundEstimate(low), roundEstimate(high))
	}
	moves := func(p *Plan) {
		for _, m := range p.Moves {
			fmt.Fprintf(&b, "    %s: %s -> %s (%d files, %s%s)\n", m.Tenant, m.From, m.To, m.Files, bytesize.Format(m.Bytes),
				about(m.Estimate, m.EstimateLow, m.EstimateHigh))
		}
	}
	for i, st := range cp.Stages {
		fmt.Fprintf(&b, "stage %d: %s\n", i+1, st.Instance)
		fmt.Fprintf(&b, "  drain %d tenants off %s%s:\n", len(st.Drain.Moves), st.Instance,
			about(st.Drain.Estimate, st.Drain.EstimateLow, st.Drain.EstimateHigh))
		moves(st.Drain)
		fmt.Fprintf(&b, "  convert %s into %s with %d tenants (%d files, %s)", st.Instance, st.Converted,
			st.Remaining.Tenants, st.Remaining.Files, bytesize.Format(st.Remaining.Bytes))
		if e := st.Convert; e != nil {
			fmt.Fprintf(&b, "%s, window %s (%s to %s)", about(e.Total, e.Low, e.High), roundWindow(e.Window),
				roundWindow(e.WindowLow), roundWindow(e.WindowHigh))
		}
		fmt.Fprintf(&b, "\n  refill %s with %d tenants from the spares%s:\n", st.Converted, len(st.Refill.Moves),
			about(st.Refill.Estimate, st.Refill.EstimateLow, st.Refill.EstimateHigh))
		moves(st.Refill)
	}
	fmt.Fprintf(&b, "spares hold at most %d tenants (%d files)", cp.PeakSpare.Tenants, cp.PeakSpare.Files)
	if estimated {
		fmt.Fprintf(&b, "; the chain takes about %s (%s to %s)", roundEstimate(cp.Estimate),
			roundEstimate(cp.EstimateLow), roundEstimate(cp.EstimateHigh))
	}
	b.WriteString("\n")
	writeBasis(&b, cp.Basis)
	return b.String()
}

// applyMoves returns a snapshot with the moves made; s is not changed.
func applyMoves(s *Snapshot, moves []Move) *Snapshot {
	out := &Snapshot{Instances: slices.Clone(s.Instances)}
	index := map[string]int{}
	for i, iu := range out.Instances {
		index[iu.Instance.ID] = i
	}
	touched := map[int]bool{}
	for _, m := range moves {
		from, to := index[m.From], index[m.To]
		for _, i := range []int{from, to} {
			if !touched[i] {
				out.Instances[i].Tenants = slices.Clone(out.Instances[i].Tenants)
				touched[i] = true
			}
		}
		ts := out.Instances[from].Tenants
		k := slices.IndexFunc(ts, func(t TenantUsage) bool { return t.ID == m.Tenant })
		if k < 0 {
			continue
		}
		out.Instances[to].Tenants = append(out.Instances[to].Tenants, ts[k])
		out.Instances[from].Tenants = slices.Delete(ts, k, k+1)
	}
	return out
}

// renamed returns a snapshot in which instance old is called id.
func (s *Snapshot) renamed(old, id string) *Snapshot {
	out := &Snapshot{Instances: slices.Clone(s.Instances)}
	for i := range out.Instances {
		if out.Instances[i].Instance.ID == old {
			out.Instances[i].Instance.ID = id
		}
	}
	return out
}

func (s *Snapshot) totalsOf(ids []string) Totals {
	var t Totals
	for _, id := range ids {
		if iu := s.find(id); iu != nil {
			it := iu.Totals()
			t.Tenants += it.Tenants
			t.Files += it.Files
			t.Bytes += it.Bytes
			t.TPS += it.TPS
		}
	}
	return t
}

func maxTotals(a, b Totals) Totals {
	if b.Files > a.Files || (b.Files == a.Files && b.Tenants > a.Tenants) {
		return b
	}
	return a
}
