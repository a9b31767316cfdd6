package drain_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
)

// randomFleet is a small fleet with random limits (some unset, some
// instances already over them) and skewed tenant sizes.
func randomFleet(rng *rand.Rand) *drain.Snapshot {
	s := &drain.Snapshot{}
	n := 2 + rng.IntN(6)
	next := 0
	for i := range n {
		var l fleet.Limits
		if rng.IntN(10) < 6 {
			l.MaxFiles = 50 + rng.Int64N(450)
		}
		if rng.IntN(10) < 6 {
			l.MaxTenants = 2 + rng.Int64N(18)
		}
		if rng.IntN(10) < 6 {
			l.MaxBytes = 1000 + rng.Int64N(99000)
		}
		inst := instance(fmt.Sprint("i", i), l)
		for range rng.IntN(13) {
			inst.Tenants = append(inst.Tenants, tenant(fmt.Sprint("t", next),
				1+int64(rng.ExpFloat64()*15), int64(rng.ExpFloat64()*5000), math.Round(rng.ExpFloat64()*20)))
			next++
		}
		s.Instances = append(s.Instances, inst)
	}
	return s
}

// model is the test's own account of a fleet, kept apart from the
// planner's.
type model struct {
	limits map[string]fleet.Limits
	totals map[string]drain.Totals
	where  map[string]string // tenant -> instance
	usage  map[string]drain.TenantUsage
}

func newModel(s *drain.Snapshot) *model {
	m := &model{limits: map[string]fleet.Limits{}, totals: map[string]drain.Totals{},
		where: map[string]string{}, usage: map[string]drain.TenantUsage{}}
	for _, iu := range s.Instances {
		m.limits[iu.Instance.ID] = iu.Instance.Limits
		m.totals[iu.Instance.ID] = drain.Totals{}
		for _, u := range iu.Tenants {
			m.where[u.ID], m.usage[u.ID] = iu.Instance.ID, u
			t := m.totals[iu.Instance.ID]
			t.Tenants, t.Files, t.Bytes, t.TPS = t.Tenants+1, t.Files+u.Files, t.Bytes+u.Bytes, t.TPS+u.TPS
			m.totals[iu.Instance.ID] = t
		}
	}
	return m
}

// with is instance id's totals with tenant u added.
func (m *model) with(id string, u drain.TenantUsage) drain.Totals {
	t := m.totals[id]
	t.Tenants, t.Files, t.Bytes = t.Tenants+1, t.Files+u.Files, t.Bytes+u.Bytes
	return t
}

func within(l fleet.Limits, t drain.Totals) bool {
	return (l.MaxFiles == 0 || t.Files <= l.MaxFiles) && (l.MaxTenants == 0 || t.Tenants <= l.MaxTenants) &&
		(l.MaxBytes == 0 || t.Bytes <= l.MaxBytes)
}

// room is the fraction of the tightest set limit left, 1 without limits.
func room(l fleet.Limits, t drain.Totals) float64 {
	r := 1.0
	for _, p := range [][2]int64{{l.MaxFiles, t.Files}, {l.MaxTenants, t.Tenants}, {l.MaxBytes, t.Bytes}} {
		if p[0] > 0 {
			r = min(r, 1-float64(p[1])/float64(p[0]))
		}
	}
	return r
}

func (m *model) apply(t *testing.T, mv drain.Move) {
	t.Helper()
	u := m.usage[mv.Tenant]
	if m.where[mv.Tenant] != mv.From {
		t.Fatalf("move %+v: the tenant is on %s", mv, m.where[mv.Tenant])
	}
	if mv.Files != u.Files || mv.Bytes != u.Bytes || mv.Database != u.Database {
		t.Fatalf("move %+v does not carry the tenant's usage %+v", mv, u)
	}
	from := m.totals[mv.From]
	from.Tenants, from.Files, from.Bytes, from.TPS = from.Tenants-1, from.Files-u.Files, from.Bytes-u.Bytes, from.TPS-u.TPS
	m.totals[mv.From] = from
	to := m.with(mv.To, u)
	to.TPS += u.TPS
	m.totals[mv.To] = to
	m.where[mv.Tenant] = mv.To
}

func sameTotals(a, b drain.Totals) bool {
	return a.Tenants == b.Tenants && a.Files == b.Files && a.Bytes == b.Bytes && math.Abs(a.TPS-b.TPS) < 1e-6
}

func (m *model) checkAffected(t *testing.T, p *drain.Plan) {
	t.Helper()
	for _, a := range p.Instances {
		if !sameTotals(a.After, m.totals[a.Instance]) {
			t.Fatalf("plan says %s ends at %+v, the moves give %+v", a.Instance, a.After, m.totals[a.Instance])
		}
	}
}

func TestPlanDrainOnRandomFleets(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 2026))
	outcomes := map[string]int{}
	for iter := range 2000 {
		s := randomFleet(rng)
		src := s.Instances[rng.IntN(len(s.Instances))]
		tot := src.Totals()
		var th drain.Threshold
		if rng.IntN(2) == 0 {
			th.MaxFiles = 1 + rng.Int64N(max(tot.Files, 1))
		}
		if rng.IntN(2) == 0 {
			th.MaxBytes = 1 + rng.Int64N(max(tot.Bytes, 1))
		}
		if th.IsZero() || rng.IntN(2) == 0 {
			th.MaxTenants = 1 + rng.Int64N(max(tot.Tenants, 1))
		}
		excluded := map[string]bool{}
		var exclude []string
		for _, iu := range s.Instances {
			if iu.Instance.ID != src.Instance.ID && rng.IntN(4) == 0 {
				excluded[iu.Instance.ID] = true
				exclude = append(exclude, iu.Instance.ID)
			}
		}
		p, err := drain.PlanDrain(s, src.Instance.ID, th, &drain.DrainOpts{Exclude: exclude})
		if p == nil {
			t.Fatalf("iteration %d: no plan: %v", iter, err)
		}

		m := newModel(s)
		order := slices.Clone(src.Tenants)
		slices.SortFunc(order, drain.SmallestFirst)
		pos := map[string]int{}
		for i, u := range order {
			pos[u.ID] = i
		}
		last := -1
		for _, mv := range p.Moves {
			if m.totals[src.Instance.ID].Within(th) {
				t.Fatalf("iteration %d: move %+v planned after the threshold %s held", iter, mv, th)
			}
			if mv.From != src.Instance.ID || mv.To == src.Instance.ID || excluded[mv.To] {
				t.Fatalf("iteration %d: move %+v (draining %s, excluded %v)", iter, mv, src.Instance.ID, exclude)
			}
			if pos[mv.Tenant] <= last {
				t.Fatalf("iteration %d: %s moves out of order", iter, mv.Tenant)
			}
			last = pos[mv.Tenant]
			// The target is where the tenant fits with the most room left,
			// the first such in the snapshot on a tie.
			best, bestRoom := "", math.Inf(-1)
			for _, iu := range s.Instances {
				id := iu.Instance.ID
				if id == src.Instance.ID || excluded[id] || !within(iu.Instance.Limits, m.with(id, m.usage[mv.Tenant])) {
					continue
				}
				if r := room(iu.Instance.Limits, m.with(id, m.usage[mv.Tenant])); r > bestRoom+1e-12 {
					best, bestRoom = id, r
				}
			}
			if mv.To != best {
				t.Fatalf("iteration %d: %s goes to %s, but %s has the most room after the move", iter, mv.Tenant, mv.To, best)
			}
			m.apply(t, mv)
			if !within(m.limits[mv.To], m.totals[mv.To]) {
				t.Fatalf("iteration %d: move %+v takes %s over its limits %+v", iter, mv, mv.To, m.limits[mv.To])
			}
		}
		m.checkAffected(t, p)
		holds := m.totals[src.Instance.ID].Within(th)
		switch {
		case err == nil:
			if !holds {
				t.Fatalf("iteration %d: no error, but %s is at %+v, over %s", iter, src.Instance.ID, m.totals[src.Instance.ID], th)
			}
			outcomes["reached"]++
			if len(p.Unplaced) > 0 {
				outcomes["reached, some passed over"]++
			}
		case errors.Is(err, drain.ErrUnplaced):
			if holds {
				t.Fatalf("iteration %d: ErrUnplaced, but the threshold holds", iter)
			}
			var pe *drain.PlacementError
			if !errors.As(err, &pe) || len(pe.Unplaced) == 0 || len(pe.Unplaced)+len(p.Moves) != len(src.Tenants) {
				t.Fatalf("iteration %d: %v: %d moves and %d unplaced of %d tenants", iter, err, len(p.Moves), len(pe.Unplaced), len(src.Tenants))
			}
			// Targets only fill up, so what fit nowhere then fits nowhere now.
			for _, u := range pe.Unplaced {
				for _, iu := range s.Instances {
					id := iu.Instance.ID
					if id != src.Instance.ID && !excluded[id] && within(iu.Instance.Limits, m.with(id, m.usage[u.Tenant])) {
						t.Fatalf("iteration %d: %s reported unplaced, but fits on %s", iter, u.Tenant, id)
					}
				}
				if u.Nearest != "" && u.Used+u.Adding <= u.Max {
					t.Fatalf("iteration %d: unplaced %+v does not exceed its limit", iter, u)
				}
			}
			outcomes["unplaced"]++
		default:
			t.Fatalf("iteration %d: %v", iter, err)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	for _, k := range []string{"reached", "reached, some passed over", "unplaced"} {
		if outcomes[k] < 10 {
			t.Errorf("only %d random fleets ended %q; the generator does not exercise it", outcomes[k], k)
		}
	}
}

func TestPlanRefillOnRandomFleets(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 2027))
	filled := 0
	for iter := range 2000 {
		s := randomFleet(rng)
		dst := s.Instances[rng.IntN(len(s.Instances))]
		var sources []string
		for _, iu := range s.Instances {
			if iu.Instance.ID != dst.Instance.ID && (len(sources) == 0 || rng.IntN(2) == 0) {
				sources = append(sources, iu.Instance.ID)
			}
		}
		var level drain.Threshold
		if rng.IntN(3) == 0 {
			level.MaxFiles = 1 + rng.Int64N(300)
		}
		capacity := dst.Instance.Limits
		if level.MaxFiles != 0 && (capacity.MaxFiles == 0 || level.MaxFiles < capacity.MaxFiles) {
			capacity.MaxFiles = level.MaxFiles
		}
		p, err := drain.PlanRefill(s, dst.Instance.ID, sources, level, nil)
		if capacity == (fleet.Limits{}) {
			if !errors.Is(err, drain.ErrInvalid) {
				t.Fatalf("iteration %d: refill without limits or level: %v", iter, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		m := newModel(s)
		var order []drain.TenantUsage
		for _, iu := range s.Instances {
			if slices.Contains(sources, iu.Instance.ID) {
				order = append(order, iu.Tenants...)
			}
		}
		slices.SortFunc(order, drain.SmallestFirst)
		last := -1
		for _, mv := range p.Moves {
			if mv.To != dst.Instance.ID || !slices.Contains(sources, mv.From) {
				t.Fatalf("iteration %d: move %+v (refilling %s from %v)", iter, mv, dst.Instance.ID, sources)
			}
			i := slices.IndexFunc(order, func(u drain.TenantUsage) bool { return u.ID == mv.Tenant })
			if i <= last {
				t.Fatalf("iteration %d: %s moves out of order", iter, mv.Tenant)
			}
			last = i
			m.apply(t, mv)
			if !within(capacity, m.totals[dst.Instance.ID]) {
				t.Fatalf("iteration %d: %s goes over %+v", iter, dst.Instance.ID, capacity)
			}
		}
		m.checkAffected(t, p)
		// Filled up: every source tenant left behind would break a limit.
		for _, u := range order {
			if m.where[u.ID] != dst.Instance.ID && within(capacity, m.with(dst.Instance.ID, u)) {
				t.Fatalf("iteration %d: %s stayed on %s but fits on %s", iter, u.ID, m.where[u.ID], dst.Instance.ID)
			}
		}
		if len(p.Moves) > 0 && len(p.Moves) < len(order) {
			filled++
		}
	}
	if filled < 100 {
		t.Errorf("only %d random refills stopped at a limit with tenants left over", filled)
	}
}
