package drain

import (
	"fmt"
	"math"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/bytesize"
)

// Headroom is how empty an instance with limits l and totals t is: the
// smallest, over the limits that are set, of the fraction of the limit
// still free, (max - used) / max. It is 1 for an empty instance and for
// one without limits, 0 for one at a limit, negative for one over. The
// most constrained dimension decides, because that is the one that fills
// first.
func Headroom(l fleet.Limits, t Totals) float64 {
	h := 1.0
	if l.MaxFiles > 0 {
		h = min(h, float64(l.MaxFiles-t.Files)/float64(l.MaxFiles))
	}
	if l.MaxTenants > 0 {
		h = min(h, float64(l.MaxTenants-t.Tenants)/float64(l.MaxTenants))
	}
	if l.MaxBytes > 0 {
		h = min(h, float64(l.MaxBytes-t.Bytes)/float64(l.MaxBytes))
	}
	return h
}

// excess is the limit a tenant would break: the instance holds used of
// it, the tenant adds adding, and max is the limit.
type excess struct {
	limit             string
	used, adding, max int64
}

// relative is how far over the limit the tenant would take the
// instance, as a fraction of the limit.
func (e excess) relative() float64 { return float64(e.used+e.adding-e.max) / float64(e.max) }

// overflow returns the limit of l that adding u to t breaks by the most
// (relative to the limit), or ok=false when u fits.
func overflow(l fleet.Limits, t Totals, u *TenantUsage) (worst excess, over bool) {
	check := func(limit string, used, adding, max int64) {
		if max <= 0 || used+adding <= max {
			return
		}
		e := excess{limit: limit, used: used, adding: adding, max: max}
		if !over || e.relative() > worst.relative() {
			worst, over = e, true
		}
	}
	check("max_files", t.Files, u.Files, l.MaxFiles)
	check("max_tenants", t.Tenants, 1, l.MaxTenants)
	check("max_bytes", t.Bytes, u.Bytes, l.MaxBytes)
	return worst, over
}

// after is t with u added.
func after(t Totals, u *TenantUsage) Totals {
	t.add(u)
	return t
}

// placer chooses where a tenant goes among the eligible instances: the
// one with the most Headroom after the move, among those where the
// tenant fits under every limit; ties go to the earlier instance in the
// snapshot.
type placer struct {
	st       *state
	eligible []int // in snapshot order
}

// best returns the instance the tenant goes to, or ok=false when it fits
// on none.
func (p *placer) best(u *TenantUsage) (to int, ok bool) {
	bestH := math.Inf(-1)
	for _, j := range p.eligible {
		l, t := p.st.limits(j), p.st.totals[j]
		if _, over := overflow(l, t, u); over {
			continue
		}
		if h := Headroom(l, after(t, u)); h > bestH {
			to, bestH, ok = j, h, true
		}
	}
	return to, ok
}

// explain says why the tenant fits nowhere: the eligible instance it
// would overfill least, and the limit it would break there.
func (p *placer) explain(u *TenantUsage) Unplaced {
	out := Unplaced{Tenant: u.ID, Files: u.Files, Bytes: u.Bytes}
	least := math.Inf(1)
	for _, j := range p.eligible {
		e, over := overflow(p.st.limits(j), p.st.totals[j], u)
		if over && e.relative() < least {
			least = e.relative()
			out.Nearest, out.Limit, out.Used, out.Adding, out.Max = p.st.id(j), e.limit, e.used, e.adding, e.max
		}
	}
	return out
}

// Unplaced is a tenant that fits on no eligible instance, and why.
type Unplaced struct {
	Tenant string `json:"tenant"`
	Files  int64  `json:"files"`
	Bytes  int64  `json:"bytes"`
	// Nearest is the eligible instance the tenant would overfill least,
	// relative to the limit; empty when no instance was eligible.
	Nearest string `json:"nearest,omitempty"`
	// Limit is the limit of Nearest the tenant breaks by the most:
	// "max_files", "max_tenants" or "max_bytes".
	Limit string `json:"limit,omitempty"`
	// Used is what Nearest holds of that limit, Adding what the tenant
	// would add, Max the limit: Used + Adding > Max.
	Used   int64 `json:"used,omitempty"`
	Adding int64 `json:"adding,omitempty"`
	Max    int64 `json:"max,omitempty"`
}

func (u Unplaced) String() string {
	what := fmt.Sprintf("tenant %s (%d files, %s)", u.Tenant, u.Files, bytesize.Format(u.Bytes))
	if u.Nearest == "" {
		return what + ": no instance may receive tenants"
	}
	return fmt.Sprintf("%s: fits nowhere; nearest is %s, where %s would be exceeded (%d + %d > %d)",
		what, u.Nearest, u.Limit, u.Used, u.Adding, u.Max)
}
