package flags

import (
	"context"
	"sync"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/fleet"
)

// MemoryProvider is an OpenFeature provider of RouteFlagKey held in
// memory, that is also a Publisher, a BatchPublisher and a
// RouteForgetter: for tests, examples, single-process tools, and as the
// override layer in front of a host's own provider. It holds every route
// published to it (it is their only store). It is safe for concurrent
// use. The zero value is not usable; call NewMemoryProvider or
// NewMemoryProviderWithConfig.
type MemoryProvider struct {
	routeTable
	catalog *catalogView // nil: routes are not checked, nor forgets

	mu     sync.RWMutex
	routes map[string]stored
	seq    int64 // write sequence number: grows with every write
}

// MemoryConfig configures a MemoryProvider; every field is optional, and nil means
// defaults.
type MemoryConfig struct {
	// Catalog, if set, is checked by Publish and PublishMany: a route to
	// an instance it does not know is refused (ErrUnknownInstance), and
	// so is one to another endpoint than its endpoint for the instance
	// (ErrEndpointMismatch), before anything is published; Forget
	// refuses to forget a route that says anything else than the
	// catalog (ErrNotForgettable). Default nil: any valid route is
	// published, and only Resolvers check it against their catalog
	// (serving the last valid route instead of a refused one). Set it
	// wherever a catalog is at hand.
	Catalog fleet.Catalog
}

var (
	_ openfeature.FeatureProvider = (*MemoryProvider)(nil)
	_ openfeature.EventHandler    = (*MemoryProvider)(nil)
	_ BatchPublisher              = (*MemoryProvider)(nil)
	_ RouteForgetter              = (*MemoryProvider)(nil)
)

// NewMemoryProvider returns a provider without routes, that publishes any
// valid route (no Catalog: see MemoryConfig).
func NewMemoryProvider() *MemoryProvider { return NewMemoryProviderWithConfig(nil) }

// NewMemoryProviderWithConfig returns a provider without routes,
// configured by cfg (nil: defaults, as NewMemoryProvider).
func NewMemoryProviderWithConfig(cfg *MemoryConfig) *MemoryProvider {
	p := &MemoryProvider{routes: map[string]stored{}}
	if cfg != nil && cfg.Catalog != nil {
		p.catalog = newPublishCheck(cfg.Catalog)
	}
	p.init("daisychain-memory", func(_ context.Context, tenant string) (stored, error) {
		p.mu.RLock()
		defer p.mu.RUnlock()
		return p.routes[tenant], nil
	})
	return p
}

// Publish implements Publisher. It emits a configuration-changed event
// naming RouteFlagKey and the tenant. With MemoryConfig.Catalog, a route
// the catalog does not back is refused.
func (p *MemoryProvider) Publish(ctx context.Context, tenantID string, r Route) error {
	if err := checkPublish(ctx, p.catalog, tenantID, r); err != nil {
		return err
	}
	p.mu.Lock()
	cur := p.routes[tenantID]
	if cur.found && cur.route.Epoch >= r.Epoch {
		p.mu.Unlock()
		return staleEpoch(tenantID, cur.route.Epoch, r.Epoch)
	}
	p.seq++
	st := stored{route: r, seq: p.seq, found: true}
	p.routes[tenantID] = st
	p.mu.Unlock()
	p.routeChanged(tenantID, st)
	return nil
}

// PublishMany implements BatchPublisher: every route or none, then one
// configuration-changed event naming the tenants (EventMetadataTenants).
func (p *MemoryProvider) PublishMany(ctx context.Context, routes []TenantRoute) error {
	if len(routes) == 0 {
		return nil
	}
	if err := checkPublishMany(ctx, p.catalog, routes); err != nil {
		return err
	}
	p.mu.Lock()
	var conflicts []EpochConflict
	for _, tr := range routes {
		if cur := p.routes[tr.Tenant]; cur.found && cur.route.Epoch >= tr.Route.Epoch {
			conflicts = append(conflicts, EpochConflict{Tenant: tr.Tenant, Held: cur.route.Epoch, Refused: tr.Route.Epoch})
		}
	}
	if len(conflicts) > 0 {
		p.mu.Unlock()
		return &StaleEpochsError{Conflicts: sortConflicts(conflicts)}
	}
	tenants := make([]string, len(routes))
	for i, tr := range routes {
		p.seq++
		p.routes[tr.Tenant] = stored{route: tr.Route, seq: p.seq, found: true}
		tenants[i] = tr.Tenant
	}
	p.mu.Unlock()
	p.routesChanged(tenants)
	return nil
}

// Forget implements RouteForgetter.
func (p *MemoryProvider) Forget(ctx context.Context, tenantID string, epoch int64) (bool, error) {
	if err := checkForgetArgs(tenantID, epoch); err != nil {
		return false, err
	}
	cur, ok, _ := p.Published(ctx, tenantID)
	if !ok || cur.Epoch != epoch {
		return false, nil
	}
	if err := checkForget(ctx, p.catalog, tenantID, cur); err != nil {
		return false, err
	}
	p.mu.Lock()
	if now := p.routes[tenantID]; !now.found || now.route != cur {
		p.mu.Unlock()
		return false, nil // published meanwhile
	}
	p.seq++
	st := stored{seq: p.seq}
	delete(p.routes, tenantID)
	p.mu.Unlock()
	p.routeChanged(tenantID, st)
	return true, nil
}

// Lookup returns the route the provider holds for the tenant, if any.
func (p *MemoryProvider) Lookup(tenantID string) (Route, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	st := p.routes[tenantID]
	return st.route, st.found
}

// Published returns the route published for the tenant, if any. For a
// MemoryProvider that is what it holds.
func (p *MemoryProvider) Published(_ context.Context, tenantID string) (Route, bool, error) {
	r, ok := p.Lookup(tenantID)
	return r, ok, nil
}
