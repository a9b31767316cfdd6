package drain

import (
	"fmt"

	"github.com/daisychain-db/daisychain/fleet"
)

// RefillOpts are optional arguments of PlanRefill; nil means defaults.
type RefillOpts struct {
	// Order is the order tenants are considered in. Default
	// SmallestFirst.
	Order Order
	// MaxMoves caps the plan's moves; zero means no cap.
	MaxMoves int
	// Concurrency is how many moves the estimate runs at once. Default
	// ConcurrencyDefault; through a Runner, its Config.Concurrency, and
	// another value is refused with ErrInvalid.
	Concurrency int
}

// PlanRefill plans moving tenants onto the instance from the sources,
// changing nothing. The tenants of all sources are considered together in
// opts.Order; each moves if it fits under the instance's Limits and under
// level, and is passed over otherwise, so smaller ones after it may still
// fill the room left. The zero level means up to the Limits. The plan
// ends when every tenant was considered, the instance is full, or
// opts.MaxMoves is reached; a refill that moves nothing is not an error.
func PlanRefill(s *Snapshot, instanceID string, sources []string, level Threshold, opts *RefillOpts) (*Plan, error) {
	var o RefillOpts
	if opts != nil {
		o = *opts
	}
	if err := validateThreshold("refill level", level); err != nil {
		return nil, err
	}
	st, i, concurrency, err := prepare(s, "instance to refill", instanceID, o.MaxMoves, o.Concurrency)
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("%w: refill of %q names no source instances", ErrInvalid, instanceID)
	}
	from := make([]int, 0, len(sources))
	seen := map[int]bool{}
	for _, id := range sources {
		j, err := st.lookup("source instance", id)
		if err != nil {
			return nil, err
		}
		if j == i {
			return nil, fmt.Errorf("%w: %q is both the instance to refill and a source", ErrInvalid, id)
		}
		if seen[j] {
			return nil, fmt.Errorf("%w: source %q is listed twice", ErrInvalid, id)
		}
		seen[j] = true
		from = append(from, j)
	}
	capacity := capped(st.limits(i), level)
	if capacity == (fleet.Limits{}) {
		return nil, fmt.Errorf("%w: instance %q has no limits and no refill level is given: the refill would take every tenant of the sources",
			ErrInvalid, instanceID)
	}
	return planRefill(st, i, from, level, capacity, o.Order, o.MaxMoves, concurrency), nil
}

// planRefill is PlanRefill on a checked state, which it updates.
func planRefill(st *state, i int, from []int, level Threshold, capacity fleet.Limits, order Order, maxMoves, concurrency int) *Plan {
	r := newRecorder(st, KindRefill, i, level, concurrency)
	for _, j := range from {
		r.plan.Sources = append(r.plan.Sources, st.id(j))
	}
	for _, c := range ordered(st, from, order) {
		if maxMoves > 0 && len(r.plan.Moves) == maxMoves {
			break
		}
		if capacity.MaxTenants > 0 && st.totals[i].Tenants >= capacity.MaxTenants {
			break // full: no tenant fits any more
		}
		if _, over := overflow(capacity, st.totals[i], c.usage); over {
			continue
		}
		r.move(c, int(st.loc[c.g]), i)
	}
	return r.finish()
}

// capped is the tighter of the limits and the level in each dimension;
// zero when neither sets it.
func capped(l fleet.Limits, level Threshold) fleet.Limits {
	tighter := func(a, b int64) int64 {
		if a == 0 || (b != 0 && b < a) {
			return b
		}
		return a
	}
	return fleet.Limits{
		MaxFiles:   tighter(l.MaxFiles, level.MaxFiles),
		MaxTenants: tighter(l.MaxTenants, level.MaxTenants),
		MaxBytes:   tighter(l.MaxBytes, level.MaxBytes),
	}
}
