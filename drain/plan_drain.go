package drain

import (
	"fmt"
	"strings"

	"github.com/daisychain-db/daisychain/internal/bytesize"
)

// DrainOpts are optional arguments of PlanDrain; nil means defaults.
type DrainOpts struct {
	// Exclude lists instances that must receive no tenant: those being
	// drained or converted elsewhere, those about to be retired. Each
	// must be in the snapshot, so a typo cannot let tenants through.
	Exclude []string
	// Onto, if set, lists the only instances that may receive tenants
	// (a daisy chain's spares and converted instances): through a Runner,
	// only they and the drained instance are read from the catalog and
	// measured, not the whole fleet. Exclude still applies within it.
	Onto []string
	// Order is the order tenants move in. Default SmallestFirst.
	Order Order
	// MaxMoves caps the plan's moves; zero means no cap. A plan that
	// reaches it before the threshold holds comes with ErrMaxMoves.
	MaxMoves int
	// Concurrency is how many moves the estimate runs at once. Default
	// ConcurrencyDefault; through a Runner, its Config.Concurrency, and
	// another value is refused with ErrInvalid.
	Concurrency int
}

// PlanDrain plans moving tenants off the instance until threshold holds
// on it, changing nothing. Tenants are taken in opts.Order; each goes to
// the instance with the most Headroom after the move among those it fits
// on under every Limit, never to the drained instance or an excluded one.
// Each placement sees the moves planned before it. The plan stops at the
// first move after which the threshold holds; a tenant that fits nowhere
// is passed over (Plan.Unplaced) and the next one tried.
//
// If the threshold cannot be reached, PlanDrain returns the partial plan
// and an error: a *PlacementError (ErrUnplaced) naming every tenant that
// fit nowhere and the limit that stopped it, or ErrMaxMoves. Bad
// arguments are ErrInvalid, with no plan.
func PlanDrain(s *Snapshot, instanceID string, threshold Threshold, opts *DrainOpts) (*Plan, error) {
	var o DrainOpts
	if opts != nil {
		o = *opts
	}
	if err := validateThreshold("threshold", threshold); err != nil {
		return nil, err
	}
	if threshold.IsZero() {
		return nil, fmt.Errorf("%w: the drain threshold sets no limit; set MaxFiles, MaxTenants or MaxBytes", ErrInvalid)
	}
	st, i, concurrency, err := prepare(s, "instance to drain", instanceID, o.MaxMoves, o.Concurrency)
	if err != nil {
		return nil, err
	}
	closed := map[int]bool{i: true}
	for _, id := range o.Exclude {
		j, err := st.lookup("excluded instance", id)
		if err != nil {
			return nil, err
		}
		closed[j] = true
	}
	eligible := make([]int, 0, len(s.Instances))
	for j := range s.Instances {
		if !closed[j] {
			eligible = append(eligible, j)
		}
	}
	return planDrain(st, i, threshold, &placer{st: st, eligible: eligible}, o.Order, o.MaxMoves, concurrency)
}

// planDrain is PlanDrain on a checked state, which it updates.
func planDrain(st *state, i int, th Threshold, p *placer, order Order, maxMoves, concurrency int) (*Plan, error) {
	r := newRecorder(st, KindDrain, i, th, concurrency)
	capped := false
	for _, c := range ordered(st, []int{i}, order) {
		if st.totals[i].Within(th) {
			break
		}
		if maxMoves > 0 && len(r.plan.Moves) == maxMoves {
			capped = true
			break
		}
		to, ok := p.best(c.usage)
		if !ok {
			r.plan.Unplaced = append(r.plan.Unplaced, p.explain(c.usage))
			continue
		}
		r.move(c, i, to)
	}
	plan := r.finish()
	switch {
	case st.totals[i].Within(th):
		return plan, nil
	case capped:
		return plan, fmt.Errorf("%w: %d moves planned, %s still at %s (threshold %s)",
			ErrMaxMoves, maxMoves, st.id(i), formatTotals(st.totals[i]), th)
	default:
		return plan, &PlacementError{Instance: st.id(i), Threshold: th, Remaining: st.totals[i], Unplaced: plan.Unplaced}
	}
}

// prepare checks the options both planners share, indexes the snapshot
// and finds the instance planned for: what it is called in errors.
func prepare(s *Snapshot, what, instanceID string, maxMoves, concurrency int) (st *state, i, conc int, err error) {
	if maxMoves < 0 {
		return nil, 0, 0, fmt.Errorf("%w: MaxMoves %d is negative; zero means no cap", ErrInvalid, maxMoves)
	}
	if concurrency < 0 {
		return nil, 0, 0, fmt.Errorf("%w: Concurrency %d is negative; zero means ConcurrencyDefault", ErrInvalid, concurrency)
	}
	if concurrency == 0 {
		concurrency = ConcurrencyDefault
	}
	if st, err = newState(s); err != nil {
		return nil, 0, 0, err
	}
	if i, err = st.lookup(what, instanceID); err != nil {
		return nil, 0, 0, err
	}
	return st, i, concurrency, nil
}

// PlacementError says why a drain cannot reach its threshold: the
// tenants that would have to move fit nowhere. It wraps ErrUnplaced.
type PlacementError struct {
	// Instance is the instance being drained.
	Instance  string
	Threshold Threshold
	// Remaining is what Instance would still hold after the planned moves.
	Remaining Totals
	// Unplaced are the tenants that fit nowhere, in the order tried.
	Unplaced []Unplaced
}

// placementErrorListed bounds how many tenants Error names; all are in
// Unplaced.
const placementErrorListed = 5

func (e *PlacementError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: draining %s stops at %s, short of %s; %d tenants fit nowhere",
		ErrUnplaced, e.Instance, formatTotals(e.Remaining), e.Threshold, len(e.Unplaced))
	for i, u := range e.Unplaced {
		if i == placementErrorListed {
			fmt.Fprintf(&b, "; and %d more", len(e.Unplaced)-i)
			break
		}
		fmt.Fprintf(&b, "; %s", u)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrUnplaced) true.
func (e *PlacementError) Unwrap() error { return ErrUnplaced }

func formatTotals(t Totals) string {
	return fmt.Sprintf("%d tenants, %d files, %s", t.Tenants, t.Files, bytesize.Format(t.Bytes))
}
