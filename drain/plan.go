package drain

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/bytesize"
)

// ConcurrencyDefault is how many moves a plan's estimate assumes run at
// once unless the options say otherwise.
const ConcurrencyDefault = 2

// MoveOverheadEstimate is the part of one tenant move's time that does
// not grow with the tenant's bytes: preflight, the schema copy with
// pg_dump and pg_restore, creating and dropping the subscription,
// catching up, the window and the catalog update. It is an estimate for a
// small tenant on a 2-core machine with local disks; rehearse on a clone
// to measure your own. The part that grows is bytes at
// cutover.CopyRateEstimate.
const MoveOverheadEstimate = 10 * time.Second

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
	// Estimate is how long the moves take: each takes
	// MoveOverheadEstimate plus its bytes at cutover.CopyRateEstimate,
	// and starts, in order, as soon as one of Concurrency slots is free.
	// With moves of similar size that is the sum divided by Concurrency.
	Estimate time.Duration `json:"estimate_ns"`
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
}

// Estimate is how long the move takes on its own: MoveOverheadEstimate
// plus its bytes at cutover.CopyRateEstimate.
func (m Move) Estimate() time.Duration {
	return MoveOverheadEstimate + time.Duration(float64(m.Bytes)/cutover.CopyRateEstimate*float64(time.Second))
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

// String is the dry-run report: a headline, the moves in order, the
// usage of every affected instance before and after, and the tenants that
// fit nowhere. It depends only on the plan, so it is the same every time.
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
	fmt.Fprintf(&b, ": %d moves, %d files, %s, about %s at %d at a time\n",
		len(p.Moves), p.Files(), bytesize.Format(p.Bytes()), p.Estimate.Round(time.Second), p.Concurrency)
	if len(p.Moves) > 0 {
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "  #\ttenant\tfrom\tto\tfiles\tbytes\ttps\t")
		for i, m := range p.Moves {
			fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%d\t%s\t%.1f\t\n", i+1, m.Tenant, m.From, m.To, m.Files, bytesize.Format(m.Bytes), m.TPS)
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

// finish fills in the affected instances and the estimate.
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
	r.plan.Estimate = estimate(r.plan.Moves, r.plan.Concurrency)
	return r.plan
}

// estimate runs the moves in order on concurrency slots, each move
// starting on the slot that frees first, and returns when the last ends.
func estimate(moves []Move, concurrency int) time.Duration {
	slots := make([]time.Duration, max(concurrency, 1)) // a min-heap of when each slot frees
	for _, m := range moves {
		slots[0] += m.Estimate()
		for i := 0; ; { // sift down
			l, s := 2*i+1, i
			if l < len(slots) && slots[l] < slots[s] {
				s = l
			}
			if l+1 < len(slots) && slots[l+1] < slots[s] {
				s = l + 1
			}
			if s == i {
				break
			}
			slots[i], slots[s] = slots[s], slots[i]
			i = s
		}
	}
	return slices.Max(slots)
}
