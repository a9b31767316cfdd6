package flags

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/pgretry"
)

// CatalogRetryDefault bounds how long a catalog lookup that failed with a
// transient error (a lost connection, a server restarting) is tried
// again, with exponential backoff, unless ResolverConfig.CatalogRetry
// says otherwise. The caller's context bounds it too.
const CatalogRetryDefault = 3 * time.Second

// catalogView reads a fleet catalog to check routes against it and to
// locate tenants without a route: answers that let a route through, and
// tenants' locations, are reused for ttl; a transient failure is retried
// for up to retry; concurrent lookups of one instance or one tenant share
// one catalog call; and refusals (a bad route, a tenant the catalog does
// not know) are reused for ttl only if cacheRefusals (a Resolver, which
// may be asked the same on every call; never a publisher, which must see
// a newly registered instance at once).
type catalogView struct {
	catalog       fleet.Catalog
	ttl           time.Duration // <= 0: ask every time
	retry         time.Duration // < 0: never retry
	cacheRefusals bool
	flight        singleflight.Group // keys: "i:" instance ID, "t:" tenant ID

	// instances is bounded by the fleet's instances; refusals, by the
	// bad routes met (each, too, a tenant's), and located, by the
	// tenants, are bounded by size and drop expired answers as they
	// meet them.
	mu        sync.Mutex
	instances map[string]cached[fleet.Instance]
	refusals  *lru[refusalKey, cached[error]]
	located   *lru[string, cached[locateResult]]
}

type locateResult struct {
	tenant fleet.Tenant
	err    error // a refusal (fleet.ErrTenantNotFound), cached only if cacheRefusals
}

// newPublishCheck returns the catalog view of a publisher: answers that
// let a route through are reused for CatalogTTLDefault (a Convert
// publishes many routes to one instance), refusals never, so an instance
// registered just before its routes are published is seen at once.
func newPublishCheck(catalog fleet.Catalog) *catalogView {
	return newCatalogView(catalog, CatalogTTLDefault, CatalogRetryDefault, false, RouteCacheSizeDefault)
}

type cached[T any] struct {
	v  T
	at time.Time
}

type refusalKey struct {
	instance string
	endpoint fleet.Endpoint
}

// newCatalogView returns a view keeping at most size tenants' answers
// (and as many refusals); size <= 0: unbounded.
func newCatalogView(catalog fleet.Catalog, ttl, retry time.Duration, cacheRefusals bool, size int) *catalogView {
	if retry == 0 {
		retry = CatalogRetryDefault
	}
	return &catalogView{catalog: catalog, ttl: ttl, retry: retry, cacheRefusals: cacheRefusals,
		instances: map[string]cached[fleet.Instance]{}, refusals: newLRU[refusalKey, cached[error]](size),
		located: newLRU[string, cached[locateResult]](size)}
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
	key := "i:" + id
	if fresh {
		key = "I:" + id // not joined with a lookup that may be the stale one
	}
	res, err := v.shared(ctx, key, func(ctx context.Context) (any, error) {
		var inst fleet.Instance
		err := v.ask(ctx, func() (err error) {
			inst, err = v.catalog.Instance(ctx, id)
			return err
		})
		if err == nil && v.ttl > 0 {
			v.mu.Lock()
			v.instances[id] = cached[fleet.Instance]{inst, time.Now()}
			v.mu.Unlock()
		}
		return inst, err
	})
	if err != nil {
		return fleet.Instance{}, err
	}
	return res.(fleet.Instance), nil
}

// locate returns where the catalog has the tenant, reusing an answer
// younger than ttl (a tenant it does not know too, if cacheRefusals), and
// sharing one catalog call among concurrent callers.
func (v *catalogView) locate(ctx context.Context, tenantID string) (fleet.Tenant, error) {
	if v.ttl > 0 {
		if c, fresh := freshIn(v, v.located, tenantID); fresh {
			return c.tenant, c.err
		}
	}
	res, err := v.shared(ctx, "t:"+tenantID, func(ctx context.Context) (any, error) {
		var t fleet.Tenant
		err := v.ask(ctx, func() (err error) {
			t, err = v.catalog.Locate(ctx, tenantID)
			return err
		})
		notFound := errors.Is(err, fleet.ErrTenantNotFound)
		if v.ttl > 0 && (err == nil || notFound && v.cacheRefusals) {
			v.mu.Lock()
			v.located.put(tenantID, cached[locateResult]{locateResult{t, err}, time.Now()})
			v.mu.Unlock()
		}
		return t, err
	})
	if err != nil {
		return fleet.Tenant{}, err
	}
	return res.(fleet.Tenant), nil
}

// forgetLocation drops the tenant's cached location, so that the next
// locate asks the catalog.
func (v *catalogView) forgetLocation(tenantID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.located.remove(tenantID)
}

// lookupTimeout bounds a catalog lookup shared by concurrent callers,
// beyond its retries: it runs apart from any one caller's context, so
// that one caller giving up does not fail the others.
const lookupTimeout = 10 * time.Second

// shared runs fn once for all the concurrent callers with the same key;
// each caller waits for it until its own context ends.
func (v *catalogView) shared(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := v.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(v.retry, 0)+lookupTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case res := <-ch:
		return res.Val, res.Err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// checkMany checks routes against the catalog once per distinct
// instance and endpoint among them (a conversion publishes hundreds of
// routes to one instance: one lookup, never a listing of the fleet), and
// returns the refusals, each naming its tenant.
func (v *catalogView) checkMany(ctx context.Context, routes []TenantRoute) []error {
	verdicts := map[refusalKey]error{}
	var errs []error
	for _, tr := range routes {
		key := refusalKey{tr.Route.Instance, tr.Route.Endpoint.Endpoint}
		err, seen := verdicts[key]
		if !seen {
			err = v.check(ctx, tr.Route)
			verdicts[key] = err
		}
		switch {
		case err == nil:
		case refusal(err):
			errs = append(errs, fmt.Errorf("tenant %q: %w", tr.Tenant, err))
		default:
			return []error{err} // the catalog cannot be read: nothing is checked
		}
	}
	return errs
}

// check refuses a route the catalog does not back: an instance it does
// not know (ErrUnknownInstance) or another endpoint than the catalog's for
// that instance (ErrEndpointMismatch). A failed lookup is returned as it
// is: neither a refusal nor a pass.
func (v *catalogView) check(ctx context.Context, route Route) error {
	key := refusalKey{route.Instance, route.Endpoint.Endpoint}
	if v.cacheRefusals && v.ttl > 0 {
		if refused, fresh := freshIn(v, v.refusals, key); fresh {
			return refused
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
		v.refusals.put(key, cached[error]{refusal, time.Now()})
		v.mu.Unlock()
	}
	return refusal
}

// freshIn returns k's answer in cache if it is younger than the view's
// ttl, and drops it if it is older.
func freshIn[K comparable, V any](v *catalogView, cache *lru[K, cached[V]], k K) (V, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := cache.get(k)
	if ok && time.Since(c.at) < v.ttl {
		return c.v, true
	}
	if ok {
		cache.remove(k)
	}
	var zero V
	return zero, false
}

func sameEndpoint(inst fleet.Instance, route Route) bool {
	return inst.Endpoint == route.Endpoint.Endpoint
}

// refusal reports whether err says a route is bad (rather than that it
// could not be checked).
func refusal(err error) bool {
	return errors.Is(err, ErrUnknownInstance) || errors.Is(err, ErrEndpointMismatch) || errors.Is(err, ErrInvalidRoute)
}
