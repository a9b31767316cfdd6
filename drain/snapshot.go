package drain

import (
	"fmt"
	"math"
	"sort"

	"github.com/daisychain-db/daisychain/fleet"
)

// Snapshot is the fleet as the planners see it: every instance with its
// Limits, the measured usage of each of its tenants, and the other
// databases on it. Measure builds one
// from a live fleet; tests and rehearsals may build one by hand.
type Snapshot struct {
	// Instances in the order placement breaks ties in (Measure: by ID).
	Instances []InstanceUsage
}

// InstanceUsage is one instance and what is on it.
type InstanceUsage struct {
	Instance fleet.Instance
	// Tenants are the catalogued tenants on the instance: what plans
	// move.
	Tenants []TenantUsage
	// Other are the other databases on the instance that count against
	// its Limits (fleet.Usage.CountsAgainstLimits): copies fenced by a
	// move and awaiting Retire, databases a move is creating, databases
	// no catalog knows. They count in Totals and never move.
	Other []fleet.Usage
}

// TenantUsage is one tenant and what its database holds.
type TenantUsage struct {
	// ID is the tenant's ID in the catalog.
	ID string
	fleet.Usage
}

// Totals is what an instance holds over all its tenants and other
// databases.
type Totals struct {
	// Tenants counts databases: the tenants and the other databases
	// (InstanceUsage.Other), each of which takes a database's share of
	// every limit.
	Tenants int64   `json:"tenants"`
	Files   int64   `json:"files"`
	Bytes   int64   `json:"bytes"`
	TPS     float64 `json:"tps"`
}

func (t *Totals) add(u *TenantUsage) { t.addDatabase(&u.Usage) }

func (t *Totals) addDatabase(u *fleet.Usage) {
	t.Tenants++
	t.Files += u.Files
	t.Bytes += u.Bytes
	t.TPS += u.TPS
}

func (t *Totals) remove(u *TenantUsage) {
	t.Tenants--
	t.Files -= u.Files
	t.Bytes -= u.Bytes
	t.TPS -= u.TPS
}

// Totals sums the usage of the instance's tenants and other databases.
func (iu *InstanceUsage) Totals() Totals {
	var t Totals
	for i := range iu.Tenants {
		t.add(&iu.Tenants[i])
	}
	for i := range iu.Other {
		t.addDatabase(&iu.Other[i])
	}
	return t
}

// state is a Snapshot indexed for planning, with running totals and
// locations that the planner updates as it assigns tenants. Instances are
// referred to by their index in Snapshot.Instances, tenants by a global
// index: first[i]+j is tenant j of instance i. Integer indexes keep a
// fleet of millions of tenants to a few bytes each beyond the snapshot.
type state struct {
	snap   *Snapshot
	index  map[string]int
	totals []Totals
	first  []int32   // len(Instances)+1 prefix sums of tenant counts
	loc    []int32   // the instance each tenant is on now
	moved  [][]int32 // per instance, tenants planned onto it (may hold stale entries)
}

// newState checks the snapshot and sums each instance's usage: one pass
// over every tenant, the cost every plan pays.
func newState(s *Snapshot) (*state, error) {
	if s == nil || len(s.Instances) == 0 {
		return nil, fmt.Errorf("%w: the snapshot has no instances", ErrInvalid)
	}
	n := 0
	for i := range s.Instances {
		n += len(s.Instances[i].Tenants)
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("%w: the snapshot has %d tenants, more than the planner's %d", ErrInvalid, n, math.MaxInt32)
	}
	st := &state{snap: s, index: make(map[string]int, len(s.Instances)), totals: make([]Totals, len(s.Instances)),
		first: make([]int32, len(s.Instances)+1), loc: make([]int32, n), moved: make([][]int32, len(s.Instances))}
	for i := range s.Instances {
		st.first[i+1] = st.first[i] + int32(len(s.Instances[i].Tenants))
		iu := &s.Instances[i]
		id := iu.Instance.ID
		if id == "" {
			return nil, fmt.Errorf("%w: snapshot instance %d has no ID", ErrInvalid, i)
		}
		if _, dup := st.index[id]; dup {
			return nil, fmt.Errorf("%w: snapshot lists instance %q twice", ErrInvalid, id)
		}
		if l := iu.Instance.Limits; l.MaxFiles < 0 || l.MaxTenants < 0 || l.MaxBytes < 0 {
			return nil, fmt.Errorf("%w: instance %q has a negative limit", ErrInvalid, id)
		}
		st.index[id] = i
		for j := range iu.Tenants {
			u := &iu.Tenants[j]
			if u.ID == "" {
				return nil, fmt.Errorf("%w: tenant %d of instance %q has no ID", ErrInvalid, j, id)
			}
			if u.Files < 0 || u.Bytes < 0 || u.TPS < 0 {
				return nil, fmt.Errorf("%w: tenant %q on %q has negative usage", ErrInvalid, u.ID, id)
			}
			st.totals[i].add(u)
			st.loc[st.first[i]+int32(j)] = int32(i)
		}
		for j := range iu.Other {
			u := &iu.Other[j]
			if u.Files < 0 || u.Bytes < 0 || u.TPS < 0 {
				return nil, fmt.Errorf("%w: database %q on %q has negative usage", ErrInvalid, u.Database, id)
			}
			st.totals[i].addDatabase(u)
		}
	}
	return st, nil
}

// lookup returns the index of the instance with the ID, or an error that
// names what the caller passed it as.
func (st *state) lookup(what, id string) (int, error) {
	i, ok := st.index[id]
	if !ok {
		return 0, fmt.Errorf("%w: %s %q is not in the snapshot", ErrInvalid, what, id)
	}
	return i, nil
}

func (st *state) id(i int) string { return st.snap.Instances[i].Instance.ID }

func (st *state) limits(i int) fleet.Limits { return st.snap.Instances[i].Instance.Limits }

// tenant returns the usage of the tenant with global index g.
func (st *state) tenant(g int32) *TenantUsage {
	i := sort.Search(len(st.snap.Instances), func(i int) bool { return st.first[i+1] > g })
	return &st.snap.Instances[i].Tenants[g-st.first[i]]
}

// tenantsOn returns the tenants on instance i now, in snapshot order and
// then in the order they were planned onto it.
func (st *state) tenantsOn(i int, out []candidate) []candidate {
	ts := st.snap.Instances[i].Tenants
	for j := range ts {
		if g := st.first[i] + int32(j); st.loc[g] == int32(i) {
			out = append(out, candidate{g: g, usage: &ts[j]})
		}
	}
	// Drop stale entries, and duplicates of a tenant that left and came
	// back.
	kept := st.moved[i][:0]
	seen := make(map[int32]struct{}, len(st.moved[i]))
	for _, g := range st.moved[i] {
		if _, dup := seen[g]; dup || st.loc[g] != int32(i) {
			continue
		}
		seen[g] = struct{}{}
		kept = append(kept, g)
		out = append(out, candidate{g: g, usage: st.tenant(g)})
	}
	st.moved[i] = kept
	return out
}

// move records that tenant g moves from instance from to instance to.
func (st *state) move(g int32, u *TenantUsage, from, to int) {
	st.totals[from].remove(u)
	st.totals[to].add(u)
	st.loc[g] = int32(to)
	st.moved[to] = append(st.moved[to], g)
}

// find returns the instance's usage, or nil.
func (s *Snapshot) find(id string) *InstanceUsage {
	for i := range s.Instances {
		if s.Instances[i].Instance.ID == id {
			return &s.Instances[i]
		}
	}
	return nil
}
