package flags

import (
	"sync"
)

// RouteCacheSizeDefault is how many tenants' routes a PostgresProvider
// keeps in memory, unless PostgresConfig.RouteCacheSize says otherwise:
// the tenants an application server serves, not the fleet's. A tenant
// without a route counts as one too. Each takes a few hundred bytes.
const RouteCacheSizeDefault = 100_000

// routeCache holds the routes of the tenants a provider was asked about,
// least recently used first out beyond max. A tenant being fetched is
// pending: notifications for it are kept, and the fetch's answer is
// merged with them, so that neither a route published during the fetch
// nor a forget is lost.
type routeCache struct {
	mu      sync.Mutex
	entries *lru[string, stored]
	pending map[string]*pendingFetch
}

type pendingFetch struct {
	st      stored // newest state notified during the fetch
	notify  bool   // st is set
	invalid bool   // a re-read found the route gone: do not cache the fetch
}

func newRouteCache(max int) *routeCache {
	return &routeCache{entries: newLRU[string, stored](max), pending: map[string]*pendingFetch{}}
}

// get returns the tenant's cached state and marks it used.
func (c *routeCache) get(tenant string) (stored, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.get(tenant)
}

// peek returns the tenant's cached state without marking it used.
func (c *routeCache) peek(tenant string) (stored, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.peek(tenant)
}

// followed reports whether notifications for tenant matter: it is cached
// or being fetched.
func (c *routeCache) followed(tenant string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, cached := c.entries.peek(tenant)
	_, pending := c.pending[tenant]
	return cached || pending
}

// apply records st for a followed tenant if it is newer than what is
// held, and reports whether a cached entry changed.
func (c *routeCache) apply(tenant string, st stored) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pf, ok := c.pending[tenant]; ok && (!pf.notify || st.newer(pf.st)) {
		pf.st, pf.notify = st, true
	}
	held, ok := c.entries.peek(tenant)
	if !ok || !st.newer(held) {
		return false
	}
	return c.entries.replace(tenant, st)
}

// drop removes the tenant (a re-read found its route gone), and keeps a
// fetch under way from caching what it read, which may be the gone
// route. It reports whether a route was cached.
func (c *routeCache) drop(tenant string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pf, ok := c.pending[tenant]; ok {
		pf.invalid = true
	}
	st, ok := c.entries.remove(tenant)
	return ok && st.found
}

// beginFetch marks the tenant pending. One fetch per tenant at a time
// (the provider coalesces them).
func (c *routeCache) beginFetch(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[tenant] = &pendingFetch{}
}

// endFetch merges what a fetch read (ok: it read something) with what was
// notified meanwhile, caches it if keep, and returns it.
func (c *routeCache) endFetch(tenant string, st stored, ok, keep bool) (stored, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pf := c.pending[tenant]
	delete(c.pending, tenant)
	if pf != nil && pf.notify && (!ok || pf.st.newer(st)) {
		st, ok = pf.st, true
	}
	if !ok {
		return stored{}, false
	}
	if !keep || pf == nil || pf.invalid {
		return st, true
	}
	if held, cached := c.entries.peek(tenant); cached && !st.newer(held) { // cached meanwhile (a Publish)
		st = held
	}
	c.entries.put(tenant, st)
	return st, true
}

// followedTenants lists the cached and pending tenants.
func (c *routeCache) followedTenants() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.entries.keys()
	for t := range c.pending {
		if _, ok := c.entries.peek(t); !ok {
			out = append(out, t)
		}
	}
	return out
}

func (c *routeCache) stats() (cached int, evictions int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.len(), c.entries.evictions
}
