package flags

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/fleet"
)

// CatalogTTLDefault is how long a Resolver reuses what the catalog said
// about an instance, or about where a tenant without a published route
// lives, unless ResolverOptions.CatalogTTL says otherwise.
const CatalogTTLDefault = 2 * time.Second

// FlagClient is what a Resolver needs of an OpenFeature client;
// *openfeature.Client has it. If the client also implements
// openfeature.IEventing (as *openfeature.Client does), a Router wakes its
// waiting callers on the provider's events.
type FlagClient interface {
	ObjectValueDetails(ctx context.Context, flag string, defaultValue any, evalCtx openfeature.EvaluationContext, options ...openfeature.Option) (openfeature.InterfaceEvaluationDetails, error)
}

// ResolverOptions are optional settings of a Resolver; nil means defaults.
type ResolverOptions struct {
	// CatalogTTL is how long a catalog answer is reused. Only answers that
	// let a route through are reused: an unknown instance or a changed
	// endpoint is always asked again. Default CatalogTTLDefault; negative:
	// ask the catalog every time.
	CatalogTTL time.Duration
}

// Resolver reads tenants' routes: it evaluates RouteFlagKey through an
// OpenFeature client with the tenant ID as targeting key, falls back to the
// catalog when no route is published for the tenant, refuses a route to an
// instance the catalog does not know (ErrUnknownInstance) or to another
// endpoint than the catalog's for that instance (ErrEndpointMismatch), and
// never goes back: a route with a lower epoch than one it returned before
// for the tenant is ignored, and the newer one returned instead. It is safe
// for concurrent use.
type Resolver struct {
	client  FlagClient
	catalog fleet.Catalog
	ttl     time.Duration

	mu        sync.Mutex
	seen      map[string]Route // newest route returned, by tenant
	instances map[string]cached[fleet.Instance]
	located   map[string]cached[Route] // catalog routes, by tenant
}

type cached[T any] struct {
	v  T
	at time.Time
}

// NewResolver returns a Resolver evaluating through client (never the
// global OpenFeature singleton: pass a client of your API, or of
// isolated.NewAPI) and checking routes against catalog.
func NewResolver(client FlagClient, catalog fleet.Catalog, opts *ResolverOptions) (*Resolver, error) {
	if client == nil || catalog == nil {
		return nil, errors.New("flags: NewResolver needs a client and a catalog")
	}
	r := &Resolver{
		client: client, catalog: catalog, ttl: CatalogTTLDefault,
		seen: map[string]Route{}, instances: map[string]cached[fleet.Instance]{}, located: map[string]cached[Route]{},
	}
	if opts != nil && opts.CatalogTTL != 0 {
		r.ttl = opts.CatalogTTL
	}
	return r, nil
}

// Resolve returns the tenant's route. A tenant without a published route
// (the flag is not found, or has no value, for it) gets the catalog's: its
// instance's endpoint and its database, epoch 0; a tenant the catalog does
// not know either is an error wrapping fleet.ErrTenantNotFound. Any other
// evaluation error is returned: the Resolver never guesses.
func (r *Resolver) Resolve(ctx context.Context, tenantID string) (Route, error) {
	d, err := r.client.ObjectValueDetails(ctx, RouteFlagKey, nil, openfeature.NewEvaluationContext(tenantID, nil))
	var route Route
	switch {
	case err == nil && d.Value != nil:
		if route, err = DecodeRoute(d.Value); err != nil {
			return Route{}, fmt.Errorf("flags: route of tenant %q: %w", tenantID, err)
		}
		if err = r.check(ctx, route); err != nil {
			return Route{}, fmt.Errorf("flags: route of tenant %q: %w", tenantID, err)
		}
	case err == nil || d.ErrorCode == openfeature.FlagNotFoundCode:
		if route, err = r.fromCatalog(ctx, tenantID); err != nil {
			return Route{}, err
		}
	default:
		return Route{}, fmt.Errorf("flags: evaluate %s for tenant %q: %w", RouteFlagKey, tenantID, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.seen[tenantID]; ok && s.Epoch > route.Epoch {
		return s, nil
	}
	r.seen[tenantID] = route
	return route, nil
}

// check refuses a route the catalog does not back.
func (r *Resolver) check(ctx context.Context, route Route) error {
	inst, err := r.instance(ctx, route.Instance, false)
	if err == nil && !sameEndpoint(inst, route) {
		inst, err = r.instance(ctx, route.Instance, true) // the cached copy may be old
	}
	switch {
	case errors.Is(err, fleet.ErrInstanceNotFound):
		return fmt.Errorf("%w: %q (route %s)", ErrUnknownInstance, route.Instance, route)
	case err != nil:
		return fmt.Errorf("flags: look up instance %q: %w", route.Instance, err)
	case !sameEndpoint(inst, route):
		return fmt.Errorf("%w: route %s, catalog %s", ErrEndpointMismatch, route, inst)
	}
	return nil
}

func sameEndpoint(inst fleet.Instance, route Route) bool {
	return inst.Endpoint.Host == route.Endpoint.Host && inst.Endpoint.Port == route.Endpoint.Port
}

func (r *Resolver) instance(ctx context.Context, id string, fresh bool) (fleet.Instance, error) {
	if !fresh && r.ttl > 0 {
		r.mu.Lock()
		c, ok := r.instances[id]
		r.mu.Unlock()
		if ok && time.Since(c.at) < r.ttl {
			return c.v, nil
		}
	}
	inst, err := r.catalog.Instance(ctx, id)
	if err != nil {
		return fleet.Instance{}, err
	}
	if r.ttl > 0 {
		r.mu.Lock()
		r.instances[id] = cached[fleet.Instance]{inst, time.Now()}
		r.mu.Unlock()
	}
	return inst, nil
}

// fromCatalog returns the route the catalog implies for a tenant.
func (r *Resolver) fromCatalog(ctx context.Context, tenantID string) (Route, error) {
	if r.ttl > 0 {
		r.mu.Lock()
		c, ok := r.located[tenantID]
		r.mu.Unlock()
		if ok && time.Since(c.at) < r.ttl {
			return c.v, nil
		}
	}
	t, err := r.catalog.Locate(ctx, tenantID)
	if err != nil {
		return Route{}, fmt.Errorf("flags: no route for tenant %q: %w", tenantID, err)
	}
	inst, err := r.instance(ctx, t.Instance, false)
	if err != nil {
		return Route{}, fmt.Errorf("flags: tenant %q: instance %q: %w", tenantID, t.Instance, err)
	}
	route := RouteTo(inst, t.Database, 0)
	if r.ttl > 0 {
		r.mu.Lock()
		r.located[tenantID] = cached[Route]{route, time.Now()}
		r.mu.Unlock()
	}
	return route, nil
}
