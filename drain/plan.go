package drain

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/bytesize"
)

// ConcurrencyDefault is how many moves a plan's estimate assumes run at
// once unless the options say otherwise.
const ConcurrencyDefault = 2

// Kind says what a Plan does.
type Kind string

const (
	// KindDrain moves tenants off Plan.Instance.
	KindDrain Kind = "drain"
	// KindRefill moves tenants onto Plan.Instance.
	KindRefill Kind = "refill"
)

// Plan is what a drain or a refill would do: the moves in the order they
// start, and what they do to each instance. Planning changes nothing.
type Plan struct {
	Kind Kind `json:"kind"`
	// Instance is the instance drained or refilled.
	Instance string `json:"instance"`
	// Sources are the instances a refill takes tenants from.
	Sources []string `json:"sources,omitempty"`
	// Threshold is the level a drain gets Instance to, or the level a
	// refill fills it up to (the zero Threshold: up to its Limits).
	Threshold Threshold `json:"threshold"`
	// Moves in the order they start.
	Moves []Move `json:"moves"`
	// Instances the moves touch: Instance first, then the others in
	// snapshot order.
	Instances []Affected `json:"instances"`
	// Unplaced are tenants a drain passed over because they fit nowhere.
	// A plan that reached its threshold may still have some.
	Unplaced []Unplaced `json:"unplaced,omitempty"`
	// Concurrency is how many moves the estimate runs at once.
	Concurrency int `json:"concurrency"`
	// Estimate is how long the moves take, EstimateLow to EstimateHigh:
	// each move takes its Move.Estimate (or its low or high end) and
	// starts, in order, as soon as one of Concurrency slots is free. With
	// moves of similar size that is the sum divided by Concurrency. A
	// Runner's plans are estimated (from the Mover's rate models, see
	// cutover.Mover.RateModel); PlanDrain and PlanRefill, which know no
	// Mover, leave the estimates zero and Basis empty.
	Estimate     time.Duration `json:"estimate_ns"`
	EstimateLow  time.Duration `json:"estimate_low_ns"`
	EstimateHigh time.Duration `json:"estimate_high_ns"`
	// Basis is what the estimates rest on: the rate model of each
	// instance pair the moves take, in the order the moves first take it.
	Basis []PairBasis `json:"basis,omitempty"`
}

// Move is one tenant's move: a cutover.Request{Tenant: Tenant, Target: To}.
type Move struct {
	Tenant   string  `json:"tenant"`
	Database string  `json:"database"`
	From     string  `json:"from"`
	To       string  `json:"to"`
	Files    int64   `json:"files"`
	Bytes    int64   `json:"bytes"`
	TPS      float64 `json:"tps"`
	// Estimate is how long the move takes on its own, EstimateLow to
	// EstimateHigh: cutover.Mover.EstimateMove of a tenant of Bytes from
	// the rate model of From and To (see Plan.Basis). Zero until the plan
	// is estimated.
	Estimate     time.Duration `json:"estimate_ns,omitempty"`
	EstimateLow  time.Duration `json:"estimate_low_ns,omitempty"`
	EstimateHigh time.Duration `json:"estimate_high_ns,omitempty"`
}

// Affected is an instance a plan touches, before and after its moves.
type Affected struct {
	Instance string       `json:"instance"`
	Limits   fleet.Limits `json:"limits"`
	Before   Totals       `json:"before"`
	After    Totals       `json:"after"`
}

// Bytes is what the plan's moves copy, in bytes.
func (p *Plan) Bytes() (n int64) {
	for _, m := range p.Moves {
		n += m.Bytes
	}
	return n
}

// Files is the number of relation files the plan's moves copy.
func (p *Plan) Files() (n int64) {
	for _, m := range p.Moves {
		n += m.Files
	}
	return n
}

// String is the dry-run report: a headline with the estimate and its
// range, the moves in order with each one's, the usage of every affected
// instance before and after, the tenants that fit nowhere, and what the
// estimates rest on. It depends only on the plan, so it is the same every
// time.
func (p *Plan) String() string {
	var b strings.Builder
	switch p.Kind {
	case KindRefill:
		level := "its limits"
		if !p.Threshold.IsZero() {
			level = p.Threshold.String()
		}
		fmt.Fprintf(&b, "refill %s from %s up to %s", p.Instance, strings.Join(p.Sources, ", "), level)
	default:
		fmt.Fprintf(&b, "drain %s until %s", p.Instance, p.Threshold)
	}
	fmt.Fprintf(&b, ": %d moves, %d files, %s", len(p.Moves), p.Files(), bytesize.Format(p.Bytes()))
	estimated := len(p.Basis) > 0
	if estimated {
		fmt.Fprintf(&b, ", about %s (%s to %s) at %d at a time", roundEstimate(p.Estimate),
			roundEstimate(p.EstimateLow), roundEstimate(p.EstimateHigh), p.Concurrency)
	}
	b.WriteString("\n")
	if len(p.Moves) > 0 {
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		header := "  #\ttenant\tfrom\tto\tfiles\tbytes\ttps\t"
		if estimated {
			header += "estimate\trange\t"
		}
		fmt.Fprintln(w, header)
		for i, m := range p.Moves {
			fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%d\t%s\t%.1f\t", i+1, m.Tenant, m.From, m.To, m.Files, bytesize.Format(m.Bytes), m.TPS)
			if estimated {
				fmt.Fprintf(w, "%s\t%s to %s\t", roundEstimate(m.Estimate), roundEstimate(m.EstimateLow), roundEstimate(m.EstimateHigh))
			}
			fmt.Fprintln(w)
		}
		w.Flush()
	}
	b.WriteString("usage before -> after:\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, a := range p.Instances {
		fmt.Fprintf(w, "  %s\ttenants %d -> %d%s\tfiles %d -> %d%s\tbytes %s -> %s%s\n", a.Instance,
			a.Before.Tenants, a.After.Tenants, limitNote(a.Limits.MaxTenants, func(n int64) string { return fmt.Sprint(n) }),
			a.Before.Files, a.After.Files, limitNote(a.Limits.MaxFiles, func(n int64) string { return fmt.Sprint(n) }),
			bytesize.Format(a.Before.Bytes), bytesize.Format(a.After.Bytes), limitNote(a.Limits.MaxBytes, bytesize.Format))
	}
	w.Flush()
	for _, u := range p.Unplaced {
		fmt.Fprintf(&b, "unplaced: %s\n", u)
	}
	writeBasis(&b, p.Basis)
	return b.String()
}

func limitNote(max int64, format func(int64) string) string {
	if max == 0 {
		return ""
	}
	return " (max " + format(max) + ")"
}

// recorder builds a Plan while the planner moves tenants in the state.
type recorder struct {
	st      *state
	plan    *Plan
	subject int
	before  map[int]Totals // of every instance touched, when first touched
}

func newRecorder(st *state, kind Kind, subject int, th Threshold, concurrency int) *recorder {
	r := &recorder{st: st, subject: subject, before: map[int]Totals{subject: st.totals[subject]},
		plan: &Plan{Kind: kind, Instance: st.id(subject), Threshold: th, Concurrency: concurrency}}
	return r
}

func (r *recorder) move(c candidate, from, to int) {
	for _, i := range []int{from, to} {
		if _, ok := r.before[i]; !ok {
			r.before[i] = r.st.totals[i]
		}
	}
	u := c.usage
	r.plan.Moves = append(r.plan.Moves, Move{Tenant: u.ID, Database: u.Database, From: r.st.id(from), To: r.st.id(to),
		Files: u.Files, Bytes: u.Bytes, TPS: u.TPS})
	r.st.move(c.g, u, from, to)
}

// finish fills in the affected instances.
func (r *recorder) finish() *Plan {
	touched := make([]int, 0, len(r.before))
	for i := range r.before {
		if i != r.subject {
			touched = append(touched, i)
		}
	}
	slices.Sort(touched)
	for _, i := range append([]int{r.subject}, touched...) {
		r.plan.Instances = append(r.plan.Instances, Affected{Instance: r.st.id(i), Limits: r.st.limits(i),
			Before: r.before[i], After: r.st.totals[i]})
	}
	return r.plan
}
