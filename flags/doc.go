// Package flags publishes and follows tenants' routes as OpenFeature flags:
// the feature-flag endpoint override that moves a tenant's traffic on
// every application server at once.
//
// # Routes
//
// A Route says where a tenant's traffic goes right now: an instance of the
// fleet catalog, its endpoint (host, port, database; never credentials,
// which come from the host application's configuration per instance),
// whether new work is paused, and an epoch that only grows. It is the
// value of the object flag RouteFlagKey ("daisychain.route"), evaluated
// with the tenant ID as targeting key; its JSON form is
//
//	{"instance": "pg-7", "endpoint": {"host": "10.0.0.7", "port": 5432,
//	 "database": "tenant_42"}, "paused": false, "epoch": 3}
//
// Route.FlagValue encodes it and DecodeRoute decodes what any provider
// returns (maps with JSON numbers, JSON text, Route values).
//
// # Writing: Publisher
//
// Two providers implement both openfeature.FeatureProvider (read, with
// configuration-changed events naming RouteFlagKey and the tenants) and
// Publisher (write): MemoryProvider, and PostgresProvider, which keeps the
// routes in a table of the control database, publishes with an epoch check
// and NOTIFY in one transaction, and follows LISTEN on a dedicated
// connection. Both refuse a route whose epoch is not newer than the
// tenant's current one (ErrStaleEpoch), so two publishers can never move a
// tenant backwards.
//
// A PostgresProvider reads routes on demand: an application server keeps
// the routes of the tenants it serves, not the fleet's. The first
// evaluation for a tenant reads its route (one indexed query, shared by
// concurrent evaluations of that tenant, bounded by FetchTimeoutDefault
// and the evaluation's context), later ones answer from a memory bounded
// by RouteCacheSizeDefault (least recently used out first), kept current
// by notifications for those tenants only; start-up reads nothing, and a
// reconnect re-reads only the tenants held, in one query.
//
// Everything else a process keeps per tenant is bounded the same way: a
// Resolver remembers the route it served and the route it refused, and
// the catalog's answers, for at most ResolverConfig.TenantCacheSize
// tenants (RouteCacheSizeDefault); a tenant it forgot gets the provider's
// route as it is (the provider is authoritative), a bad one checked and
// refused again. A Router forgets a tenant with nothing under way once
// it goes unused for its PoolIdleTimeout.
//
// Both providers also have two optional capabilities. BatchPublisher's
// PublishMany publishes the routes of many tenants in one transaction, all
// or none, each epoch checked (a *StaleEpochsError names the tenants
// refused), with one read of the catalog's instances, and announces them
// in a few notifications under PostgreSQL's 8,000-byte payload limit that
// name the tenants. RouteForgetter's Forget deletes a route once it says
// no more than the catalog (cutover's Retire), so that the table holds
// overrides, not history; readers fall back to the catalog, and the next
// route published for the tenant, whose epoch starts again at 1, is
// followed because of the route store's write sequence number
// (FlagMetadataSeq). Given the fleet catalog
// (MemoryConfig.Catalog, PostgresConfig.Catalog), they also refuse a
// route to an instance it does not know (ErrUnknownInstance) or to another
// endpoint than its own for the instance (ErrEndpointMismatch), and
// publish nothing.
//
// # Reading: Resolver
//
// A Resolver evaluates the route through an OpenFeature client the caller
// passes (never the global singleton), falls back to the catalog when no
// route is published for the tenant (epoch 0), and never returns an older
// epoch than one it returned before. A flag must never send traffic
// somewhere unknown, and a bad flag must not become an outage: a route
// that is malformed, names an instance the catalog does not know, or
// another endpoint than the catalog's is refused, the Resolver keeps
// serving the tenant's last valid route (or the catalog's), and it emits
// EventRouteRefused (Resolver.Subscribe). Catalog lookups that fail with a
// transient error are retried briefly (CatalogRetryDefault).
//
// Any OpenFeature provider can serve the reads. To keep a host
// application's own provider for its other flags, layer the routes
// provider over it with the OpenFeature multi-provider and the first-match
// strategy: the routes provider answers FLAG_NOT_FOUND for tenants without
// a route and for every other flag, so the next provider is asked:
//
//	routes, err := flags.NewPostgresProvider(ctx, controlDB, nil)
//	...
//	layered, err := multi.NewProvider(multi.StrategyFirstMatch,
//		multi.WithProvider("daisychain-routes", routes),
//		multi.WithProvider("host", hostProvider))
//	...
//	api := isolated.NewAPI() // or the host's own API instance
//	err = api.SetProviderAndWait(ctx, layered)
//	resolver, err := flags.NewResolver(api.NewClient(), catalog, nil)
//
// (multi is github.com/open-feature/go-sdk/openfeature/multi; see
// Example_layered.) The multi-provider forwards the routes provider's
// configuration-changed events.
//
// # Connecting: Router
//
// A Router's Acquire returns a pgx connection for the tenant's current
// route, from one pgxpool per route endpoint (a database: pgx connections
// are bound to one), created when first needed with the host
// application's pool settings and credentials (RouterConfig.PoolConfig)
// and closed after PoolIdleTimeoutDefault unused. Across the pools of one
// instance it holds at most MaxConnsPerInstanceDefault server connections:
// a pool that needs one more closes an idle one of another pool, or waits,
// bounded by the caller's context. While the route is paused, Acquire
// waits, bounded by the caller's context and the hold limit
// (HoldLimitDefault), instead of failing, and is woken by events that name
// its tenant (not another's), or every PollIntervalDefault; when the route
// moves, new work goes to the new pool and the old pool closes once its
// connections are back. InFlight reports the connections a tenant has out
// of this Router, for the host's own monitoring (a cutover drains by
// watching the source's sessions, which counts every process). Acquire
// reuses the route it evaluated until an event names the tenant, for at
// most RouteMaxAgeDefault, so a lost event delays a flip by that much at
// most. Catalog lookups for tenants without a route are shared by
// concurrent callers, and their answers, "unknown tenant" included, reused
// for CatalogTTLDefault.
//
// # Beyond the Router
//
// Clients that do not take their connections from a Router follow the
// routes through PgBouncer: package flags/pgbouncer keeps a PgBouncer's
// [databases] entries equal to the routes of its tenants (PAUSE while a
// route is paused, rewrite, RELOAD and RESUME when it moves).
// EventTenants reads the tenants a provider's event names, for any
// component that follows routes as the Router does.
//
// # Measured
//
// On a 2-core machine shared with other test runs, loopback (commands in
// the README):
//
//   - A Publish with the PostgreSQL provider reached all of 10 routers
//     (each with its own provider) in 0.5 ms at the median and 1.5 ms at
//     p99, and all of 100 routers (10 providers of 10) in 1.1 ms and
//     3.8 ms (200 publishes each, BenchmarkPropagation).
//   - With 1,000,000 routes in the table, a new provider, Resolver and
//     Router were ready and had served a first Acquire in 17.5 ms, holding
//     0.16 MB of heap, 1.43 MB once 1,000 tenants were resolved; loading
//     the table into a map instead took 4.8 s and 291 MB
//     (BenchmarkStartWithMillionRoutes).
//   - Router.Acquire+Release of a warm tenant cost 299 to 411 ns against
//     242 to 313 ns for a bare pgxpool acquire (1.07 to 1.51 times, three
//     runs of BenchmarkAcquireOverhead); with 10,000 tenants over 900
//     databases on 3 instances, 336 and 309 against 233 and 232 ns (1.44
//     and 1.33 times, two runs), and never more than the budget of 50
//     connections per instance under 16 callers; under their mixed load,
//     where a call to a cold database reconnects, 480 and 558 calls/s
//     against 484 and 565 through bare pgxpools held in the same budget
//     the same way, in the same runs (BenchmarkRouterFleet).
package flags
