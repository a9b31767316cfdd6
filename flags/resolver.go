package flags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/eventbus"
)

// CatalogTTLDefault is how long a Resolver reuses what the catalog said
// about an instance, or about where a tenant without a published route
// lives, unless ResolverConfig.CatalogTTL says otherwise.
const CatalogTTLDefault = 2 * time.Second

// TenantCacheSizeDefault is how many tenants a Resolver remembers, unless
// ResolverConfig.TenantCacheSize says otherwise: as many as a
// PostgresProvider caches routes of, by default.
const TenantCacheSizeDefault = RouteCacheSizeDefault

// FlagClient is what a Resolver needs of an OpenFeature client;
// *openfeature.Client has it. If the client also implements
// openfeature.IEventing (as *openfeature.Client does), a Router wakes its
// waiting callers on the provider's events.
type FlagClient interface {
	ObjectValueDetails(ctx context.Context, flag string, defaultValue any, evalCtx openfeature.EvaluationContext, options ...openfeature.Option) (openfeature.InterfaceEvaluationDetails, error)
}

// ResolverConfig configures a Resolver; every field is optional, and nil
// means defaults.
type ResolverConfig struct {
	// CatalogTTL is how long a catalog answer is reused: an instance, a
	// tenant's location, a tenant the catalog does not know, and the
	// refusal of a bad route (so that a bad flag, or an unknown tenant,
	// costs the catalog one lookup per CatalogTTL, not one per Resolve).
	// Default CatalogTTLDefault; negative: ask the catalog every time
	// (concurrent lookups of one tenant still share one call).
	CatalogTTL time.Duration

	// CatalogRetry bounds how long a catalog lookup that failed with a
	// transient error (a lost connection, a server restarting) is tried
	// again, with backoff, before Resolve returns the error. Default
	// CatalogRetryDefault; negative: never.
	CatalogRetry time.Duration

	// Logger receives refused routes (Warn), once per route and tenant.
	// Default: discarded.
	Logger *slog.Logger

	// TenantCacheSize bounds how many tenants the Resolver remembers: the
	// route it served each (what keeps it from going back), the route it
	// refused, and where the catalog has a tenant without a route; the
	// least recently resolved are forgotten beyond it. A forgotten
	// tenant's next route comes from the provider as it is, which is
	// authoritative (a provider that never goes back is what keeps a
	// forgotten tenant from going back), and a refused route is checked
	// against the catalog again (and refused again, if still bad; the
	// refusal is then reported again). Size it, as the provider's
	// RouteCacheSize, to the tenants a process serves. Default
	// TenantCacheSizeDefault; negative: unbounded.
	TenantCacheSize int
}

// Resolver reads tenants' routes: it evaluates RouteFlagKey through an
// OpenFeature client with the tenant ID as targeting key, falls back to the
// catalog when no route is published for the tenant, and never goes back:
// a route with a lower epoch than one it returned before for the tenant is
// ignored, and the newer one returned instead.
//
// A bad flag does not become an outage: a published route that is
// malformed, names an instance the catalog does not know, or another
// endpoint than the catalog's for that instance (a flag must never send
// traffic somewhere unknown) is refused, and the Resolver keeps serving
// the last valid route it returned for the tenant (or the catalog's, if
// none), and emits EventRouteRefused (see Subscribe). Once the flag is
// valid again (or the catalog has caught up, within CatalogTTL), it is
// followed. Catalog lookups that fail with a transient error are retried
// (CatalogRetry). It is safe for concurrent use.
type Resolver struct {
	client  FlagClient
	catalog *catalogView
	log     *slog.Logger
	events  eventbus.Bus[EventKind, *ResolverEvent]

	mu      sync.Mutex
	tenants *lru[string, tenantMemory] // bounded by TenantCacheSize
}

// tenantMemory is what a Resolver remembers of a tenant.
type tenantMemory struct {
	seen       seenRoute // newest valid route returned
	hasSeen    bool
	refused    Route // last route refused, until a valid one comes
	hasRefused bool
}

// NewResolver returns a Resolver evaluating through client (never the
// global OpenFeature singleton: pass a client of your API, or of
// isolated.NewAPI) and checking routes against catalog.
func NewResolver(client FlagClient, catalog fleet.Catalog, cfg *ResolverConfig) (*Resolver, error) {
	if client == nil || catalog == nil {
		return nil, fmt.Errorf("%w: NewResolver needs a client and a catalog", ErrInvalidConfig)
	}
	var o ResolverConfig
	if cfg != nil {
		o = *cfg
	}
	if o.CatalogTTL == 0 {
		o.CatalogTTL = CatalogTTLDefault
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TenantCacheSize == 0 {
		o.TenantCacheSize = TenantCacheSizeDefault
	}
	size := max(o.TenantCacheSize, 0)
	return &Resolver{
		client: client, catalog: newCatalogView(catalog, o.CatalogTTL, o.CatalogRetry, true, size), log: o.Logger,
		tenants: newLRU[string, tenantMemory](size),
	}, nil
}

// Client returns the OpenFeature client the Resolver evaluates through.
// A component that follows routes (Router, flags/pgbouncer's Follower)
// listens to its provider's events when it implements
// openfeature.IEventing.
func (r *Resolver) Client() FlagClient { return r.client }

// Resolve returns the tenant's route. A tenant without a published route
// (the flag is not found, or has no value, for it) gets the catalog's: its
// instance's endpoint and its database, epoch 0; a tenant the catalog does
// not know either is an error wrapping fleet.ErrTenantNotFound (that
// answer is reused for CatalogTTL, as a found location is, and
// concurrent lookups of one tenant share one catalog call). A refused
// route (see Resolver) is not an error. Any other evaluation error, or a
// catalog that stays unreachable, is returned: the Resolver never guesses.
//
// When a tenant's published route disappears (a RouteForgetter forgot it,
// which it does only once it says what the catalog says), the Resolver
// serves the catalog's route if the provider says as of which write the
// route is absent (FlagMetadataSeq for a forget it saw,
// FlagMetadataAbsentAsOf for a read that found none, as this package's
// providers do) and that write is not older than the route it served: so
// a tenant moved and retired while this Resolver was not asked about it is
// found where it is now, the catalog read afresh if the answer it holds
// may predate the move. Without that number it keeps serving the route it
// served. It follows a route published later even though its epoch starts
// again from 1, by the provider's write sequence number. A route that
// comes back older than the one it serves (a provider gone back to an old
// copy of the routes) is ignored; once it serves the catalog's route after
// a forget, any route published is followed, which a Forget makes safe: it
// deletes only a route that says what the catalog says.
func (r *Resolver) Resolve(ctx context.Context, tenantID string) (Route, error) {
	d, err := r.client.ObjectValueDetails(ctx, RouteFlagKey, nil, openfeature.NewEvaluationContext(tenantID, nil))
	var route Route
	var seq, absentAsOf int64
	switch {
	case err == nil && d.Value != nil:
		seq = metadataSeq(d.FlagMetadata, FlagMetadataSeq)
		route, err = DecodeRoute(d.Value)
		if err == nil {
			err = r.catalog.check(ctx, route)
		}
		if refusal(err) {
			return r.refuse(ctx, tenantID, route, seq, err)
		}
		if err != nil {
			return Route{}, fmt.Errorf("flags: route of tenant %q: %w", tenantID, err)
		}
	case err == nil || d.ErrorCode == openfeature.FlagNotFoundCode:
		if route, err = r.fromCatalog(ctx, tenantID); err != nil {
			return Route{}, err
		}
		forgotAt := metadataSeq(d.FlagMetadata, FlagMetadataSeq)
		absentAsOf = max(forgotAt, metadataSeq(d.FlagMetadata, FlagMetadataAbsentAsOf))
		if r.catalogBehind(tenantID, route, forgotAt, absentAsOf) {
			// The route it served is gone, and the catalog's answer it
			// holds (up to CatalogTTL old) disagrees: it may predate
			// the move whose route was forgotten. Ask again.
			r.catalog.forgetLocation(tenantID)
			if route, err = r.fromCatalog(ctx, tenantID); err != nil {
				return Route{}, err
			}
		}
		seq = absentAsOf
	default:
		return Route{}, fmt.Errorf("flags: evaluate %s for tenant %q: %w", RouteFlagKey, tenantID, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	m, _ := r.tenants.get(tenantID)
	if m.hasSeen && !supersedes(route, seq, m.seen) && !forgotten(absentAsOf, m.seen) {
		if m.hasRefused {
			m.refused, m.hasRefused = Route{}, false
			r.tenants.replace(tenantID, m)
		}
		return m.seen.route, nil
	}
	r.tenants.put(tenantID, tenantMemory{seen: seenRoute{route, seq}, hasSeen: true})
	return route, nil
}

// seenRoute is the newest valid route a Resolver returned for a tenant,
// with the provider's write sequence number (0 if unknown).
type seenRoute struct {
	route Route
	seq   int64
}

// supersedes reports whether route (written at seq) replaces what was
// served: an epoch as great or greater, or a later write of the route
// store (a route published after the served one was forgotten).
func supersedes(route Route, seq int64, served seenRoute) bool {
	return route.Epoch >= served.route.Epoch || seq > served.seq
}

// catalogBehind reports whether the catalog's route for a tenant whose
// route is absent should be read again rather than taken from what the
// Resolver holds (up to CatalogTTL old, so perhaps from before a move):
// the provider saw the route forgotten (forgotAt) after the route the
// Resolver served; or the served route is gone (absentAsOf) and the held
// answer disagrees with it. A Forget deletes only a route that says what
// the catalog says, so a fresh answer agrees with the tenant's last
// route. Each forget costs a Resolver one catalog read.
func (r *Resolver) catalogBehind(tenantID string, fromCatalog Route, forgotAt, absentAsOf int64) bool {
	r.mu.Lock()
	m, _ := r.tenants.peek(tenantID)
	r.mu.Unlock()
	if !m.hasSeen {
		return false
	}
	return forgotAt > m.seen.seq || forgotten(absentAsOf, m.seen) && m.seen.route.Instance != fromCatalog.Instance
}

// forgotten reports whether a route found absent as of write absentAsOf
// (FlagMetadataSeq of a FLAG_NOT_FOUND) means the served route is gone:
// the provider had seen the served route's write, or a later one, when it
// found none. The tenant is then where the catalog says, even if the
// Resolver did not see the moves and forgets between. Without a sequence
// number (0) nothing is known, and the served route stays.
func forgotten(absentAsOf int64, served seenRoute) bool {
	return absentAsOf > 0 && absentAsOf >= served.seq
}

// metadataSeq reads a sequence number (FlagMetadataSeq,
// FlagMetadataAbsentAsOf), as whatever integer type the providers and
// hooks on the way left it.
func metadataSeq(m openfeature.FlagMetadata, key string) int64 {
	switch v := m[key].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

// refuse returns what serves the tenant instead of bad, refused for why:
// the last published route returned, else the catalog's.
func (r *Resolver) refuse(ctx context.Context, tenantID string, bad Route, seq int64, why error) (Route, error) {
	r.mu.Lock()
	m, _ := r.tenants.get(tenantID)
	r.mu.Unlock()
	s, ok := m.seen, m.hasSeen
	serving := s.route
	if ok && !supersedes(bad, seq, s) && !errors.Is(why, ErrInvalidRoute) {
		return serving, nil // older than what it serves: ignored anyway
	}
	if !ok || serving.Epoch == 0 {
		var err error
		if serving, err = r.fromCatalog(ctx, tenantID); err != nil {
			return Route{}, fmt.Errorf("flags: route of tenant %q: %w; and no valid route to serve instead: %w", tenantID, why, err)
		}
	}
	r.mu.Lock()
	m, _ = r.tenants.get(tenantID) // again: a Resolve may have changed it meanwhile
	last, told := m.refused, m.hasRefused
	m.refused, m.hasRefused = bad, true
	r.tenants.put(tenantID, m)
	r.mu.Unlock()
	if !told || last != bad {
		r.log.Warn("flags: refused the published route; serving the last valid one", "tenant", tenantID,
			"refused", bad.String(), "serving", serving.String(), "err", why)
		r.emit(&ResolverEvent{Kind: EventRouteRefused, Tenant: tenantID, Refused: bad, Serving: serving, Err: why})
	}
	return serving, nil
}

// fromCatalog returns the route the catalog implies for a tenant.
func (r *Resolver) fromCatalog(ctx context.Context, tenantID string) (Route, error) {
	t, err := r.catalog.locate(ctx, tenantID)
	if err != nil {
		return Route{}, fmt.Errorf("flags: no route for tenant %q: %w", tenantID, err)
	}
	inst, err := r.catalog.instance(ctx, t.Instance, false)
	if err != nil {
		return Route{}, fmt.Errorf("flags: tenant %q: instance %q: %w", tenantID, t.Instance, err)
	}
	return RouteTo(inst, t.Database, 0), nil
}
