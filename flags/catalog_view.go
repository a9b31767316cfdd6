package flags

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/pgretry"
)

// CatalogRetryDefault bounds how long a catalog lookup that failed with a
// transient error (a lost connection, a server restarting) is tried
// again, with exponential backoff, unless ResolverOptions.CatalogRetry
// says otherwise. The caller's context bounds it too.
const CatalogRetryDefault = 3 * time.Second

// catalogView reads the instances of a fleet catalog to check routes
// against it: answers that let a route through are reused for ttl, a
// transient failure is retried for up to retry, and refusals are reused
// for ttl only if cacheRefusals (a Resolver, which may see the same bad
// flag on every call; never a publisher, which must see a newly
// registered instance at once).
type catalogView struct {
	catalog       fleet.Catalog
	ttl           time.Duration // <= 0: ask every time
	retry         time.Duration // < 0: never retry
	cacheRefusals bool

	mu        sync.Mutex
	instances map[string]cached[fleet.Instance]
	refusals  map[refusalKey]cached[error]
}

type cached[T any] struct {
	v  T
	at time.Time
}

type refusalKey struct {
	instance, host string
	port           int
}

func newCatalogView(catalog fleet.Catalog, ttl, retry time.Duration, cacheRefusals bool) *catalogView {
	if retry == 0 {
		retry = CatalogRetryDefault
	}
	return &catalogView{catalog: catalog, ttl: ttl, retry: retry, cacheRefusals: cacheRefusals,
		instances: map[string]cached[fleet.Instance]{}, refusals: map[refusalKey]cached[error]{}}
}

// ask runs a catalog lookup, trying it again while it fails with a
// transient error, for up to retry.
func (v *catalogView) ask(ctx context.Context, op func() error) error {
	if v.retry < 0 {
		return op()
	}
	return pgretry.Retry(ctx, v.retry, 20*time.Millisecond, pgretry.Transient, op)
}

// instance returns the catalog's instance id, reusing an answer younger
// than ttl unless fresh.
func (v *catalogView) instance(ctx context.Context, id string, fresh bool) (fleet.Instance, error) {
	if !fresh && v.ttl > 0 {
		v.mu.Lock()
		c, ok := v.instances[id]
		v.mu.Unlock()
		if ok && time.Since(c.at) < v.ttl {
			return c.v, nil
		}
	}
	var inst fleet.Instance
	err := v.ask(ctx, func() (err error) {
		inst, err = v.catalog.Instance(ctx, id)
		return err
	})
	if err != nil {
		return fleet.Instance{}, err
	}
	if v.ttl > 0 {
		v.mu.Lock()
		v.instances[id] = cached[fleet.Instance]{inst, time.Now()}
		v.mu.Unlock()
	}
	return inst, nil
}

// check refuses a route the catalog does not back: an instance it does
// not know (ErrUnknownInstance) or another endpoint than the catalog's for
// that instance (ErrEndpointMismatch). A failed lookup is returned as it
// is: neither a refusal nor a pass.
func (v *catalogView) check(ctx context.Context, route Route) error {
	key := refusalKey{route.Instance, route.Endpoint.Host, route.Endpoint.Port}
	if v.cacheRefusals && v.ttl > 0 {
		v.mu.Lock()
		c, ok := v.refusals[key]
		v.mu.Unlock()
		if ok && time.Since(c.at) < v.ttl {
			return c.v
		}
	}
	inst, err := v.instance(ctx, route.Instance, false)
	if err == nil && !sameEndpoint(inst, route) {
		inst, err = v.instance(ctx, route.Instance, true) // the cached copy may be old
	}
	var refusal error
	switch {
	case errors.Is(err, fleet.ErrInstanceNotFound):
		refusal = fmt.Errorf("%w: %q (route %s)", ErrUnknownInstance, route.Instance, route)
	case err != nil:
		return fmt.Errorf("flags: look up instance %q: %w", route.Instance, err)
	case !sameEndpoint(inst, route):
		refusal = fmt.Errorf("%w: route %s, catalog %s", ErrEndpointMismatch, route, inst)
	default:
		return nil
	}
	if v.cacheRefusals && v.ttl > 0 {
		v.mu.Lock()
		v.refusals[key] = cached[error]{refusal, time.Now()}
		v.mu.Unlock()
	}
	return refusal
}

func sameEndpoint(inst fleet.Instance, route Route) bool {
	return inst.Endpoint.Host == route.Endpoint.Host && inst.Endpoint.Port == route.Endpoint.Port
}

// refusal reports whether err says a route is bad (rather than that it
// could not be checked).
func refusal(err error) bool {
	return errors.Is(err, ErrUnknownInstance) || errors.Is(err, ErrEndpointMismatch) || errors.Is(err, ErrInvalidRoute)
}
