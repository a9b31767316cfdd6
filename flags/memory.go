package flags

import (
	"context"
	"fmt"
	"strings"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/fleet"
)

// Publisher writes tenants' routes. Implementations refuse a route whose
// epoch is not greater than the tenant's current one (ErrStaleEpoch), so
// two publishers can never move a tenant backwards.
type Publisher interface {
	// Publish makes r the tenant's route. r must be valid and its Epoch
	// at least 1 (epoch 0 is the catalog's route).
	Publish(ctx context.Context, tenantID string, r Route) error
}

// checkPublish validates the arguments of Publish and, with a catalog,
// checks the route against it.
func checkPublish(ctx context.Context, catalog *catalogView, tenantID string, r Route) error {
	if tenantID == "" || len(tenantID) > 200 || strings.ContainsFunc(tenantID, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return fmt.Errorf("%w: tenant ID %q must be 1 to 200 bytes without control characters", ErrInvalidRoute, tenantID)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("flags: publish route of tenant %q: %w", tenantID, err)
	}
	if r.Epoch < 1 {
		return fmt.Errorf("%w: published routes need epoch 1 or more (tenant %q)", ErrInvalidRoute, tenantID)
	}
	if catalog != nil {
		if err := catalog.check(ctx, r); err != nil {
			return fmt.Errorf("flags: publish route of tenant %q: %w", tenantID, err)
		}
	}
	return nil
}

// newPublishCheck returns the catalog view of a publisher: answers that
// let a route through are reused for CatalogTTLDefault (a Convert
// publishes many routes to one instance), refusals never, so an instance
// registered just before its routes are published is seen at once.
func newPublishCheck(catalog fleet.Catalog) *catalogView {
	return newCatalogView(catalog, CatalogTTLDefault, CatalogRetryDefault, false)
}

func staleEpoch(tenantID string, held, refused int64) error {
	return fmt.Errorf("%w: tenant %q is at epoch %d, refused epoch %d", ErrStaleEpoch, tenantID, held, refused)
}

// MemoryProvider is an OpenFeature provider of RouteFlagKey held in
// memory, that is also a Publisher: for tests, examples, single-process
// tools, and as the override layer in front of a host's own provider. It
// is safe for concurrent use. The zero value is not usable; call
// NewMemoryProvider or NewMemoryProviderWithOptions.
type MemoryProvider struct {
	routeTable
	catalog *catalogView // nil: routes are not checked
}

// MemoryOptions are optional settings of a MemoryProvider; nil means
// defaults.
type MemoryOptions struct {
	// Catalog, if set, is checked by Publish: a route to an instance it
	// does not know is refused (ErrUnknownInstance), and so is one to
	// another endpoint than its endpoint for the instance
	// (ErrEndpointMismatch), before anything is published. Default nil:
	// any valid route is published, and only Resolvers check it against
	// their catalog (serving the last valid route instead of a refused
	// one). Set it wherever a catalog is at hand.
	Catalog fleet.Catalog
}

var (
	_ openfeature.FeatureProvider = (*MemoryProvider)(nil)
	_ openfeature.EventHandler    = (*MemoryProvider)(nil)
	_ Publisher                   = (*MemoryProvider)(nil)
)

// NewMemoryProvider returns a provider without routes, that publishes any
// valid route (no Catalog: see MemoryOptions).
func NewMemoryProvider() *MemoryProvider { return NewMemoryProviderWithOptions(nil) }

// NewMemoryProviderWithOptions returns a provider without routes,
// configured by opts (nil: defaults, as NewMemoryProvider).
func NewMemoryProviderWithOptions(opts *MemoryOptions) *MemoryProvider {
	p := &MemoryProvider{}
	if opts != nil && opts.Catalog != nil {
		p.catalog = newPublishCheck(opts.Catalog)
	}
	p.init("daisychain-memory")
	return p
}

// Publish implements Publisher. It emits a configuration-changed event
// naming RouteFlagKey and the tenant. With MemoryOptions.Catalog, a route
// the catalog does not back is refused.
func (p *MemoryProvider) Publish(ctx context.Context, tenantID string, r Route) error {
	if err := checkPublish(ctx, p.catalog, tenantID, r); err != nil {
		return err
	}
	if applied, held := p.apply(tenantID, r); !applied {
		return staleEpoch(tenantID, held, r.Epoch)
	}
	p.routeChanged(tenantID, r)
	return nil
}

// Published returns the route published for the tenant, if any. For a
// MemoryProvider that is what it holds.
func (p *MemoryProvider) Published(_ context.Context, tenantID string) (Route, bool, error) {
	r, ok := p.Lookup(tenantID)
	return r, ok, nil
}
