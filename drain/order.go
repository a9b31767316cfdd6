package drain

import (
	"cmp"
	"slices"
)

// Order compares two tenants for the order in which they move: negative
// when a moves before b, positive when after, zero when either may go
// first (they then keep the order of the snapshot).
type Order func(a, b TenantUsage) int

// SmallestFirst is the default Order: fewest files first, then fewest
// bytes, then least activity (TPS), then by ID so the order is total.
// Small, quiet tenants move first because their moves are quick and
// their cutover windows disturb the fewest users; files come first
// because the file count is what keeps a full instance from converting.
func SmallestFirst(a, b TenantUsage) int {
	if c := cmp.Compare(a.Files, b.Files); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Bytes, b.Bytes); c != 0 {
		return c
	}
	if c := cmp.Compare(a.TPS, b.TPS); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// candidate is a tenant the planner may move: its global index and its
// usage.
type candidate struct {
	g     int32
	usage *TenantUsage
}

// ordered returns the tenants now on the instances in the order policy
// says, ties in the order of from and then of the snapshot.
func ordered(st *state, from []int, order Order) []candidate {
	var out []candidate
	for _, i := range from {
		out = st.tenantsOn(i, out)
	}
	if order == nil {
		order = SmallestFirst
	}
	slices.SortStableFunc(out, func(a, b candidate) int { return order(*a.usage, *b.usage) })
	return out
}
