package flags

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"
)

const (
	// HoldLimitDefault bounds how long Router.Acquire waits while a
	// tenant's route is paused, unless RouterConfig.HoldLimit says
	// otherwise. The caller's context bounds it too.
	HoldLimitDefault = 30 * time.Second

	// PollIntervalDefault is how often a waiting Router.Acquire
	// re-evaluates a paused route when no provider event wakes it first.
	PollIntervalDefault = 5 * time.Millisecond

	// MaxConnsPerInstanceDefault caps the server connections a Router
	// holds to one instance, across the pools of all its tenant
	// databases there, unless RouterConfig.MaxConnsPerInstance says
	// otherwise.
	MaxConnsPerInstanceDefault = 50

	// RouteMaxAgeDefault bounds how long a Router reuses the route it
	// evaluated for a tenant without a provider event, unless
	// RouterConfig.RouteMaxAge says otherwise.
	RouteMaxAgeDefault = 100 * time.Millisecond

	// PoolIdleTimeoutDefault is how long a tenant database's pool may go
	// unused before the Router closes it (and its connections), unless
	// RouterConfig.PoolIdleTimeout says otherwise.
	PoolIdleTimeoutDefault = 5 * time.Minute

	// RouteMaxAgeMin is the shortest positive RouterConfig.RouteMaxAge:
	// the Router's clock of route reuse ticks every millisecond at
	// most, four ticks a RouteMaxAge, so a shorter one could not be kept.
	RouteMaxAgeMin = reuseTicks * time.Millisecond

	// MaxConnsPerInstanceLimit is the greatest RouterConfig.MaxConnsPerInstance:
	// PostgreSQL's own limit on max_connections (MAX_BACKENDS), beyond
	// which a cap means nothing.
	MaxConnsPerInstanceLimit = 1<<18 - 1
)

// RouterConfig configures a Router.
type RouterConfig struct {
	// Resolver reads the routes. Required. If its client implements
	// openfeature.IEventing, provider events wake waiting callers at once.
	Resolver *Resolver

	// PoolConfig returns the host application's pool settings and
	// credentials for a route's instance, as a config made by
	// pgxpool.ParseConfig. Required. The Router then sets the
	// connection's host, port and database to the route's endpoint, so a
	// connection always goes where the route says: other hosts of a
	// multi-host string are dropped, and the TLS settings of its first
	// host are kept, in order (sslmode=prefer, the default, tries TLS and
	// then plaintext, as pgx does), with the route's host as the server
	// name that verify-full checks. PoolConfigFrom covers a host with one
	// connection string for every instance.
	PoolConfig func(ctx context.Context, r Route) (*pgxpool.Config, error)

	// HoldLimit bounds how long Acquire waits while the route is paused;
	// then it fails with ErrPaused. Default HoldLimitDefault; negative:
	// fail at once.
	HoldLimit time.Duration

	// PollInterval is how often a waiting Acquire re-evaluates the route
	// from the provider's memory. Default PollIntervalDefault; not
	// negative.
	PollInterval time.Duration

	// RouteMaxAge bounds how long Acquire reuses the route it evaluated
	// for a tenant, when the Resolver's client delivers provider events
	// (openfeature.IEventing): an event naming the tenant, or naming no
	// tenant, ends the reuse at once, so this only bounds how stale a
	// route can be if an event is lost (a route is reused for between
	// three quarters of it and all of it, by a clock the Router's timer
	// advances, so as late as the process runs its timers). A paused
	// route is never reused.
	// Without events every Acquire evaluates. Default
	// RouteMaxAgeDefault; negative: evaluate on every Acquire; a positive
	// value is at least RouteMaxAgeMin.
	RouteMaxAge time.Duration

	// MaxConnsPerInstance caps the server connections this Router holds
	// to one instance, across the pools of all its tenant databases
	// there (each pool is still bounded by its own pool_max_conns). A
	// pool that needs a connection beyond the cap first closes an idle
	// connection of another pool of the instance, if there is one, and
	// otherwise waits for one to close, bounded by the caller's context;
	// while callers wait, connections released on that instance are
	// closed rather than kept idle. Cancel requests, which last a moment
	// and open no session, are not counted. Default
	// MaxConnsPerInstanceDefault; negative: no cap; at most
	// MaxConnsPerInstanceLimit.
	MaxConnsPerInstance int

	// PoolIdleTimeout is how long a tenant database's pool may go unused
	// (no connection out, no Acquire under way) before the Router closes
	// it, with its connections and its health-check goroutine, and
	// forgets the tenants that used it; the next Acquire opens a new one.
	// A tenant not asked about for as long, with nothing under way, is
	// forgotten too, even if its pool stays open for others, so that the
	// Router's memory follows the tenants it serves now, not every tenant
	// it ever served. Default PoolIdleTimeoutDefault; negative: pools are
	// never closed, and tenants are forgotten after PoolIdleTimeoutDefault.
	PoolIdleTimeout time.Duration

	// Logger receives route changes (Info) and pool lifecycle (Debug).
	// Default: discarded.
	Logger *slog.Logger
}

// validate refuses the settings NewRouter cannot work with, naming each.
func (c *RouterConfig) validate() error {
	if c == nil {
		return fmt.Errorf("%w: NewRouter needs a RouterConfig with Resolver and PoolConfig", ErrInvalidConfig)
	}
	var errs []error
	if c.Resolver == nil {
		errs = append(errs, errors.New("RouterConfig.Resolver is nil: set the *Resolver that reads the routes"))
	}
	if c.PoolConfig == nil {
		errs = append(errs, errors.New("RouterConfig.PoolConfig is nil: set the pool settings of a route's instance (PoolConfigFrom, for one connection string)"))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("RouterConfig.PollInterval is %s: it must not be negative (0 means %s)", c.PollInterval, PollIntervalDefault))
	}
	if c.RouteMaxAge > 0 && c.RouteMaxAge < RouteMaxAgeMin {
		errs = append(errs, fmt.Errorf("RouterConfig.RouteMaxAge is %s: at least %s (0 means %s; negative: evaluate on every Acquire)", c.RouteMaxAge, RouteMaxAgeMin, RouteMaxAgeDefault))
	}
	if c.MaxConnsPerInstance > MaxConnsPerInstanceLimit {
		errs = append(errs, fmt.Errorf("RouterConfig.MaxConnsPerInstance is %d: at most %d, PostgreSQL's limit (negative: no cap)", c.MaxConnsPerInstance, MaxConnsPerInstanceLimit))
	}
	return invalidConfig(errs)
}

// PoolConfigFrom returns a RouterConfig.PoolConfig that parses connString
// (credentials and pool settings; its host, port and database are
// replaced by the route's) for every route.
func PoolConfigFrom(connString string) func(context.Context, Route) (*pgxpool.Config, error) {
	return func(context.Context, Route) (*pgxpool.Config, error) {
		return pgxpool.ParseConfig(connString)
	}
}

// Router hands out connections to tenants' databases where their routes
// say. It keeps one pgxpool per route endpoint (a database on an
// instance: pgx connections are bound to one database), created when
// first needed and closed after PoolIdleTimeout unused, and holds at most
// MaxConnsPerInstance server connections to one instance across those
// pools. While a tenant's route is paused, Acquire waits instead of
// failing, and is woken when that tenant's route changes, not another's.
// When a route moves to another endpoint, new work goes to the new pool
// and the old pool is closed once every connection taken from it is
// released.
//
// Acquire evaluates the tenant's route from the provider's memory, and
// reuses it until a provider event names the tenant (or names none), for
// at most RouteMaxAge, so that a lost event delays a flip by RouteMaxAge
// at most; a paused route is evaluated again on every wake-up, and at
// least every PollInterval. It is safe for concurrent use.
type Router struct {
	resolver    *Resolver
	poolConfig  func(context.Context, Route) (*pgxpool.Config, error)
	holdLimit   time.Duration
	poll        time.Duration
	maxAge      time.Duration // <= 0, or no events: evaluate on every Acquire
	maxConns    int           // per instance; <= 0: no cap
	idleTimeout time.Duration // <= 0: never close idle pools
	log         *slog.Logger
	events      openfeature.IEventing // nil without events
	onEvent     openfeature.EventCallback
	done        chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	tenants map[string]*tenantState // the tenants served lately; see sweep
	sweeps  int64                   // sweeps done: the clock of idleness (touched, usedSweep)
	uses    uint64                  // counts pools going idle: the order of lastUse
	pools   map[poolKey]*routePool  // pools in use; retired ones are not here
	open    map[*routePool]bool     // every pool not yet closing, retired or not
	budgets map[string]*instanceBudget
	sweeper *time.Timer // closes idle pools, forgets idle tenants
	// ticks is the clock of route reuse, advanced every maxAge/reuseTicks
	// by ticker (nil without reuse): reading the system clock costs more
	// than the rest of a warm Acquire on some virtual machines.
	ticks   atomic.Int64
	ticker  *time.Timer
	closers sync.WaitGroup // pool closes under way
	hangups sync.WaitGroup // closed connections waiting for the server to hang up
}

type poolKey struct {
	instance string
	endpoint Endpoint
}

func keyOf(r Route) poolKey { return poolKey{r.Instance, r.Endpoint} }

type routePool struct {
	key       poolKey
	pool      *pgxpool.Pool
	budget    *instanceBudget            // nil: no cap
	members   map[*tenantState]bool      // tenants whose current route uses it
	inflight  int                        // connections out, and acquires under way
	conns     map[*pgx.Conn]*tenantState // connections out, by the tenant that took them
	usedSweep int64                      // Router.sweeps when inflight last went to 0
	lastUse   atomic.Uint64              // Router.uses then: orders pools by last use (read without Router.mu)
	retired   bool                       // no tenant routes here any more
	closing   bool
}

type tenantState struct {
	id       string
	route    Route
	known    bool
	gen      int        // counts route changes
	pool     *routePool // pool of route, once attached
	inflight int
	waiters  int           // Acquire calls waiting while the route is paused
	wake     chan struct{} // closed to wake them; nil when nobody waits
	// Acquire reuses route while Router.ticks is below validUntil (0:
	// not reusable); an event for the tenant clears it and counts in
	// events, so that an evaluation that started before the event does
	// not make its result reusable.
	validUntil int64
	events     int
	touched    int64 // Router.sweeps when last asked about
}

// NewRouter returns a Router. Settings it cannot work with are refused
// with an error wrapping ErrInvalidConfig that names each.
func NewRouter(cfg *RouterConfig) (*Router, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Router{
		resolver:    cfg.Resolver,
		poolConfig:  cfg.PoolConfig,
		holdLimit:   cfg.HoldLimit,
		poll:        cfg.PollInterval,
		maxAge:      cfg.RouteMaxAge,
		maxConns:    cfg.MaxConnsPerInstance,
		idleTimeout: cfg.PoolIdleTimeout,
		log:         cfg.Logger,
		done:        make(chan struct{}),
		tenants:     map[string]*tenantState{},
		pools:       map[poolKey]*routePool{},
		open:        map[*routePool]bool{},
		budgets:     map[string]*instanceBudget{},
	}
	r.holdLimit = cmp.Or(r.holdLimit, HoldLimitDefault)
	r.poll = cmp.Or(r.poll, PollIntervalDefault)
	r.maxAge = cmp.Or(r.maxAge, RouteMaxAgeDefault)
	r.maxConns = cmp.Or(r.maxConns, MaxConnsPerInstanceDefault)
	r.idleTimeout = cmp.Or(r.idleTimeout, PoolIdleTimeoutDefault)
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	ev, eventing := cfg.Resolver.client.(openfeature.IEventing)
	r.mu.Lock() // the timers' functions read them under it
	r.sweeper = time.AfterFunc(r.sweepInterval(), r.sweep)
	if eventing && r.maxAge > 0 {
		r.ticker = time.AfterFunc(r.tickInterval(), r.tick)
	}
	r.mu.Unlock()
	if eventing {
		fn := func(d openfeature.EventDetails) { r.woken(d) }
		r.events, r.onEvent = ev, &fn
		ev.AddHandler(openfeature.ProviderConfigChange, r.onEvent)
		ev.AddHandler(openfeature.ProviderReady, r.onEvent)
	}
	return r, nil
}

// woken wakes the callers waiting for the tenants a provider event names,
// or every waiting caller when it names none (a provider ready again).
func (r *Router) woken(d openfeature.EventDetails) {
	tenants := EventTenants(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(tenants) == 0 {
		for _, ts := range r.tenants {
			ts.events++
			ts.validUntil = 0
			wakeLocked(ts)
		}
		return
	}
	for _, t := range tenants {
		if ts := r.tenants[t]; ts != nil {
			ts.events++
			ts.validUntil = 0
			wakeLocked(ts)
		}
	}
}

func wakeLocked(ts *tenantState) {
	if ts.wake != nil {
		close(ts.wake)
		ts.wake = nil
	}
}

// Route resolves the tenant's route, as Acquire does, and records it: the
// route the Router follows now.
func (r *Router) Route(ctx context.Context, tenantID string) (Route, error) {
	r.mu.Lock()
	_, route, err := r.evaluateLocked(ctx, tenantID, r.tenants[tenantID])
	if err != nil {
		return Route{}, err
	}
	r.mu.Unlock()
	return route, nil
}

// evaluateLocked evaluates the tenant's route (ts: its state, if any)
// and records it. Called with r.mu held, it releases it while the
// Resolver evaluates; it returns with r.mu held, or without it with an
// error.
func (r *Router) evaluateLocked(ctx context.Context, tenantID string, ts *tenantState) (*tenantState, Route, error) {
	events := 0
	if ts != nil {
		events = ts.events
	}
	r.mu.Unlock()
	route, err := r.resolver.Resolve(ctx, tenantID)
	if err != nil {
		return nil, Route{}, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, Route{}, fmt.Errorf("flags: router: %w", ErrClosed)
	}
	return r.evaluatedLocked(tenantID, route, ts, events), route, nil
}

// reusableLocked returns the tenant's route if Acquire may reuse it.
func (r *Router) reusableLocked(tenantID string) (*tenantState, bool) {
	ts := r.tenants[tenantID]
	if ts == nil || !ts.known || ts.route.Paused {
		return ts, false
	}
	return ts, r.ticks.Load() < ts.validUntil
}

// evaluatedLocked records a route just evaluated, and makes it reusable
// for maxAge unless an event for the tenant came during the evaluation
// (before and events: the tenant's state and event count before it).
func (r *Router) evaluatedLocked(tenantID string, route Route, before *tenantState, events int) *tenantState {
	ts := r.observeLocked(tenantID, route)
	if r.maxAge > 0 && r.events != nil && ts == before && ts.events == events {
		ts.validUntil = r.ticks.Load() + reuseTicks
	}
	return ts
}

// Acquire returns a connection to the tenant's database where its route
// says; release it with Release. While the route is paused, Acquire waits
// until it is not, the context ends, or the hold limit passes (ErrPaused).
// Resolver errors (fleet.ErrTenantNotFound, a flag evaluation error, an
// unreachable catalog) are returned as they are; a refused route is not
// an error (the Resolver serves the last valid one). A connection beyond
// MaxConnsPerInstance waits for one to be freed, until the context ends.
//
// A connection is counted in InFlight until it is released. Do not Hijack
// it: a hijacked connection stays counted, and keeps its pool open, until
// the Router is closed.
func (r *Router) Acquire(ctx context.Context, tenantID string) (*pgxpool.Conn, error) {
	var hold, poll *time.Timer
	var heldSince time.Time
	defer func() {
		if hold != nil {
			hold.Stop()
			poll.Stop()
		}
	}()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, fmt.Errorf("flags: router: %w", ErrClosed)
		}
		ts, reuse := r.reusableLocked(tenantID)
		var route Route
		if reuse {
			route = ts.route
		} else {
			var err error
			if ts, route, err = r.evaluateLocked(ctx, tenantID, ts); err != nil {
				return nil, err
			}
		}
		ts.touched = r.sweeps

		if route.Paused {
			if r.holdLimit < 0 {
				r.mu.Unlock()
				return nil, fmt.Errorf("%w: tenant %q, route %s", ErrPaused, tenantID, route)
			}
			if ts.wake == nil {
				ts.wake = make(chan struct{})
			}
			wake := ts.wake
			ts.waiters++
			r.mu.Unlock()
			if hold == nil {
				heldSince = time.Now()
				hold, poll = time.NewTimer(r.holdLimit), time.NewTimer(r.poll)
			} else {
				poll.Reset(r.poll)
			}
			var err error
			select {
			case <-ctx.Done():
				err = fmt.Errorf("flags: tenant %q held %s while its route is paused: %w",
					tenantID, time.Since(heldSince).Round(time.Millisecond), context.Cause(ctx))
			case <-hold.C:
				err = fmt.Errorf("%w: tenant %q held %s, route %s", ErrPaused, tenantID, r.holdLimit, route)
			case <-r.done:
			case <-wake:
			case <-poll.C:
			}
			r.mu.Lock()
			ts.waiters--
			r.mu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		}

		rp := ts.pool
		if rp == nil {
			if rp = r.pools[keyOf(route)]; rp == nil {
				r.mu.Unlock()
				if err := r.createPool(ctx, route); err != nil {
					return nil, err
				}
				continue
			}
			rp.members[ts] = true
			ts.pool = rp
		}
		rp.inflight++
		ts.inflight++
		gen := ts.gen
		r.mu.Unlock()

		c, err := rp.pool.Acquire(ctx)
		r.mu.Lock()
		if err != nil {
			// A route that changed while this call dialled (a move paused
			// it, then fenced the source, which refused the connection)
			// is followed rather than its old endpoint's error returned.
			moved := ts.gen != gen && !r.closed && ctx.Err() == nil
			r.doneWithLocked(rp, ts)
			r.mu.Unlock()
			if moved {
				continue
			}
			return nil, fmt.Errorf("flags: tenant %q: acquire a connection to %s: %w", tenantID, route.Endpoint, err)
		}
		rp.conns[c.Conn()] = ts
		// The route changed while this call waited for the pool: take
		// the new one instead.
		moved := ts.gen != gen || r.closed
		r.mu.Unlock()
		if moved {
			c.Release()
			continue
		}
		if hold != nil {
			r.log.Debug("flags: acquire released after hold", "tenant", tenantID,
				"held", time.Since(heldSince), "route", route.String())
		}
		return c, nil
	}
}

// Do runs fn with a connection acquired for the tenant, and releases it.
func (r *Router) Do(ctx context.Context, tenantID string, fn func(*pgxpool.Conn) error) error {
	c, err := r.Acquire(ctx, tenantID)
	if err != nil {
		return err
	}
	defer c.Release()
	return fn(c)
}

// InFlight reports the tenant's work in flight through this Router:
// connections acquired and not yet released, and Acquire calls already
// past the route check that wait for a connection of the pool. Callers
// waiting while the route is paused are not counted. It is for the host
// application's own monitoring and shutdown: a cutover does not read it
// (it cannot see the Routers of other processes); after pausing the route
// it waits for the source database's sessions to go idle instead (see
// cutover.Config.QuiesceGrace), which counts every client.
func (r *Router) InFlight(tenantID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts := r.tenants[tenantID]; ts != nil {
		return ts.inflight
	}
	return 0
}

// Close stops the Router: Acquire fails with ErrClosed, waiting callers
// return, and every pool is closed. Like pgxpool.Pool.Close, it waits until
// every acquired connection is released.
func (r *Router) Close() {
	r.mu.Lock()
	first := !r.closed
	if first {
		r.closed = true
		close(r.done)
		r.sweeper.Stop()
		if r.ticker != nil {
			r.ticker.Stop()
		}
		// pgxpool's Close waits for the connections still out.
		for rp := range r.open {
			r.closeLocked(rp)
		}
		clear(r.pools)
	}
	r.mu.Unlock()
	if first && r.events != nil {
		r.events.RemoveHandler(openfeature.ProviderConfigChange, r.onEvent)
		r.events.RemoveHandler(openfeature.ProviderReady, r.onEvent)
	}
	r.closers.Wait()
	r.hangups.Wait()
}

// observeLocked records the route the Router follows for tenantID.
func (r *Router) observeLocked(tenantID string, route Route) *tenantState {
	ts := r.tenants[tenantID]
	if ts == nil {
		ts = &tenantState{id: tenantID}
		r.tenants[tenantID] = ts
	}
	ts.touched = r.sweeps
	if ts.known && ts.route == route {
		return ts
	}
	if ts.known {
		r.log.Info("flags: route changed", "tenant", tenantID, "from", ts.route.String(), "to", route.String())
	}
	if ts.pool != nil && ts.pool.key == keyOf(route) && ts.route.Epoch != route.Epoch {
		// The route was republished for the same endpoint: a move was
		// rolled back, and a database fence may have ended the idle
		// connections of this pool. Open fresh ones rather than hand
		// out dead ones; connections in use close when released.
		ts.pool.pool.Reset()
	}
	if ts.pool != nil && ts.pool.key != keyOf(route) {
		r.detachLocked(ts)
	}
	ts.route, ts.known = route, true
	ts.gen++
	wakeLocked(ts)
	return ts
}

// detachLocked takes ts out of its pool's tenants, and retires the pool
// if no other tenant's route uses it: it closes once nothing is in
// flight on it.
func (r *Router) detachLocked(ts *tenantState) {
	rp := ts.pool
	ts.pool = nil
	delete(rp.members, ts)
	if len(rp.members) == 0 && !rp.retired {
		delete(r.pools, rp.key)
		rp.retired = true
		r.closeIfDoneLocked(rp)
	}
}

// doneWithLocked counts one piece of ts's work on rp as over.
func (r *Router) doneWithLocked(rp *routePool, ts *tenantState) {
	ts.inflight--
	if rp.inflight--; rp.inflight == 0 {
		r.uses++
		rp.usedSweep = r.sweeps
		rp.lastUse.Store(r.uses)
	}
	r.closeIfDoneLocked(rp)
}

// closeIfDoneLocked closes a retired pool once nothing is in flight on it.
func (r *Router) closeIfDoneLocked(rp *routePool) {
	if rp.retired && rp.inflight == 0 {
		r.closeLocked(rp)
	}
}

func (r *Router) closeLocked(rp *routePool) {
	if rp.closing {
		return
	}
	rp.closing = true
	delete(r.open, rp)
	if rp.budget != nil {
		rp.budget.remove(rp)
	}
	r.closers.Go(func() {
		rp.pool.Close()
		r.log.Debug("flags: pool closed", "instance", rp.key.instance, "endpoint", rp.key.endpoint.String())
	})
}

// sweepInterval is how often idle pools and tenants are looked for:
// often enough that a pool is closed at most half a timeout late.
func (r *Router) sweepInterval() time.Duration {
	idle := r.idleTimeout
	if idle <= 0 { // pools stay open; tenants are still forgotten
		idle = PoolIdleTimeoutDefault
	}
	return max(idle/2, 10*time.Millisecond)
}

// idleSweeps is how many sweeps a pool goes unused, or a tenant unasked,
// before it is closed or forgotten: two whole intervals at least, the
// idle timeout.
const idleSweeps = 3

// reuseTicks is how many ticks of Router.ticks a route is reused for:
// RouteMaxAge at most, three quarters of it at least.
const reuseTicks = 4

// tick advances the clock of route reuse.
func (r *Router) tick() {
	r.ticks.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.ticker.Reset(r.tickInterval())
	}
}

func (r *Router) tickInterval() time.Duration { return r.maxAge / reuseTicks } // >= 1ms: RouteMaxAgeMin

// sweep closes the pools unused for idleTimeout, and forgets the tenants
// that used them, and every tenant not asked about for as long, that
// have nothing under way (no connection out, no Acquire past the route
// check, no caller waiting on a paused route), so that a Router's memory
// follows the tenants it serves now. A forgotten tenant's next Acquire
// evaluates its route afresh, as a first one does.
func (r *Router) sweep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	idle := func(ts *tenantState) bool { return ts.inflight == 0 && ts.waiters == 0 }
	r.sweeps++
	for _, rp := range r.pools {
		if r.idleTimeout <= 0 || rp.inflight > 0 || r.sweeps-rp.usedSweep < idleSweeps {
			continue
		}
		delete(r.pools, rp.key)
		rp.retired = true
		for ts := range rp.members {
			ts.pool = nil
			if idle(ts) && r.tenants[ts.id] == ts {
				delete(r.tenants, ts.id)
			}
		}
		clear(rp.members)
		r.closeLocked(rp)
		r.log.Debug("flags: idle pool closing", "instance", rp.key.instance, "endpoint", rp.key.endpoint.String())
	}
	for id, ts := range r.tenants {
		if !idle(ts) || r.sweeps-ts.touched < idleSweeps {
			continue
		}
		switch {
		case ts.pool == nil:
		case r.idleTimeout > 0:
			r.detachLocked(ts)
		default: // pools are never closed: forget the tenant only
			delete(ts.pool.members, ts)
			ts.pool = nil
		}
		delete(r.tenants, id)
	}
	r.sweeper.Reset(r.sweepInterval())
}

// released is called by the pool's tracer when a connection is released.
func (r *Router) released(rp *routePool, conn *pgx.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := rp.conns[conn]
	if ts == nil {
		return
	}
	delete(rp.conns, conn)
	r.doneWithLocked(rp, ts)
}

// createPool makes the pool of route's endpoint, unless one exists.
func (r *Router) createPool(ctx context.Context, route Route) error {
	cfg, err := r.poolConfig(ctx, route)
	if err == nil && cfg == nil {
		err = errors.New("PoolConfig returned nil")
	}
	if err != nil {
		return fmt.Errorf("flags: pool config for instance %q: %w", route.Instance, err)
	}
	cc := cfg.ConnConfig
	pointAt(&cc.Config, route.Endpoint)
	rp := &routePool{key: keyOf(route), conns: map[*pgx.Conn]*tenantState{}, members: map[*tenantState]bool{}}
	var tracer pgx.QueryTracer = releaseTracer{r, rp}
	if cc.Tracer != nil {
		tracer = multitracer.New(cc.Tracer, tracer)
	}
	cc.Tracer = tracer
	if r.maxConns > 0 {
		rp.budget = r.budget(route.Instance)
		rp.budget.limit(cfg)
	}
	if rp.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("flags: pool for %s: %w", route.Endpoint, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.open[rp] = true
	if r.closed || r.pools[rp.key] != nil {
		// Closed meanwhile, or another caller was faster. Nothing was
		// acquired from this pool.
		r.closeLocked(rp)
		if r.closed {
			return fmt.Errorf("flags: router: %w", ErrClosed)
		}
		return nil
	}
	// If the tenant's route moved on meanwhile, the pool waits here unused
	// until a route uses it, the Router closes, or it is idle too long.
	r.uses++
	rp.usedSweep = r.sweeps
	rp.lastUse.Store(r.uses)
	r.pools[rp.key] = rp
	if rp.budget != nil {
		rp.budget.add(rp)
	}
	r.log.Debug("flags: pool created", "instance", route.Instance, "endpoint", route.Endpoint.String())
	return nil
}

// releaseTracer tells the Router when a connection of its pool is
// released: it is the one hook pgxpool calls on every Release.
type releaseTracer struct {
	r  *Router
	rp *routePool
}

func (t releaseTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (releaseTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t releaseTracer) TraceRelease(_ *pgxpool.Pool, d pgxpool.TraceReleaseData) {
	t.r.released(t.rp, d.Conn)
	if b := t.rp.budget; b != nil && b.waiting.Load() > 0 {
		// A pool of the instance waits for a connection slot: free
		// this one rather than keep it idle (the pool then drops it),
		// unless the connections closing already cover the need.
		b.released(d.Conn)
	}
}
