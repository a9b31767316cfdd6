package flags

import "time"

// What tests outside the package check of the per-tenant memories: that
// they stay bounded. Nothing here is part of the package's API.

// ResolverMemory returns how many tenants r remembers, and how many
// catalog answers about tenants (locations) and refused routes it holds.
func ResolverMemory(r *Resolver) (tenants, located, refusals int) {
	r.mu.Lock()
	tenants = r.tenants.len()
	r.mu.Unlock()
	r.catalog.mu.Lock()
	defer r.catalog.mu.Unlock()
	return tenants, r.catalog.located.len(), r.catalog.refusals.len()
}

// RouterMemory returns how many tenants r keeps state for, and how many
// pools it has not closed.
func RouterMemory(r *Router) (tenants, pools int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tenants), len(r.open)
}

// BudgetWaiters returns how many dials of r wait for a connection slot
// of the instance.
func BudgetWaiters(r *Router, instance string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.budgets[instance]; b != nil {
		return int(b.waiting.Load())
	}
	return 0
}

// PoolConns returns how many connections the pool the tenant's route
// uses holds, in use or idle (0 without a pool).
func PoolConns(r *Router, tenantID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts := r.tenants[tenantID]; ts != nil && ts.pool != nil {
		return int(ts.pool.pool.Stat().TotalConns())
	}
	return 0
}

// ReuseTicks is how many ticks of a Router's clock a route is reused for.
const ReuseTicks = reuseTicks

// RouteClockTick returns how often r's timer advances its clock of route
// reuse.
func RouteClockTick(r *Router) time.Duration { return r.tickInterval() }

// AdvanceRouteClock advances r's clock of route reuse by n ticks, as its
// timer does once every RouteClockTick.
func AdvanceRouteClock(r *Router, n int) { r.ticks.Add(int64(n)) }

// Sweep runs as many of r's sweeps as make a pool, or a tenant, idle for
// PoolIdleTimeout, as its timer would over that time.
func Sweep(r *Router) {
	for range idleSweeps {
		r.sweep()
	}
}

// Capped reports whether r counts its connections to the instance
// against MaxConnsPerInstance.
func Capped(r *Router, instance string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.budgets[instance] != nil
}

// CacheBounds returns how many tenants p's route cache and r's memory
// hold at most (0: unbounded).
func CacheBounds(p *PostgresProvider, r *Resolver) (routes, tenants int) {
	return p.cache.entries.max, r.tenants.max
}
