package flags

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"
	"golang.org/x/sync/singleflight"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/pgschema"
)

const (
	// PingIntervalDefault is how long the listening connection may stay
	// quiet before the provider checks it with a ping, unless
	// PostgresConfig.PingInterval says otherwise.
	PingIntervalDefault = 5 * time.Second

	// SchemaMaxLen is the longest PostgresConfig.Schema, in bytes: the
	// notification channel, "<schema>.routes", is an identifier of at
	// most 63.
	SchemaMaxLen = 56

	// ListenerApplicationName is the application_name of the listening
	// connection when the connection string sets none, so that it can be
	// told apart in pg_stat_activity.
	ListenerApplicationName = "daisychain-flags-listener"

	// initTimeout bounds Init when the SDK gives no context.
	initTimeout = 30 * time.Second
	// connectTimeout bounds one attempt to connect, LISTEN and re-read.
	connectTimeout = 10 * time.Second

	// FetchTimeoutDefault bounds the query that reads a tenant's route
	// on a cache miss, unless PostgresConfig.FetchTimeout says
	// otherwise. The evaluation's context bounds the wait too.
	FetchTimeoutDefault = 2 * time.Second
)

// migrations of component "flags"; never edit or reorder, only append.
var migrations = []string{
	`CREATE TABLE {{schema}}.routes (
		tenant     text PRIMARY KEY,
		route      jsonb NOT NULL,
		epoch      bigint NOT NULL CHECK (epoch > 0),
		updated_at timestamptz NOT NULL DEFAULT now());
	COMMENT ON TABLE {{schema}}.routes IS
		'daisychain: published tenant routes (flag daisychain.route); write through flags.PostgresProvider.Publish only'`,
	// seq orders a tenant's routes across a Forget (after which epochs
	// start again): every write takes the next number, whoever writes.
	`CREATE SEQUENCE {{schema}}.routes_seq;
	ALTER TABLE {{schema}}.routes ADD COLUMN seq bigint NOT NULL DEFAULT 0;
	COMMENT ON COLUMN {{schema}}.routes.seq IS
		'daisychain: write sequence number (trigger routes_seq): orders a tenant''s routes across a forget';
	CREATE FUNCTION {{schema}}.routes_stamp_seq() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		NEW.seq := nextval(format('%I.routes_seq', TG_TABLE_SCHEMA)::regclass);
		RETURN NEW;
	END $$;
	CREATE TRIGGER routes_seq BEFORE INSERT OR UPDATE ON {{schema}}.routes
		FOR EACH ROW EXECUTE FUNCTION {{schema}}.routes_stamp_seq()`,
}

// PostgresConfig configures a PostgresProvider; every field is optional, and nil means
// defaults.
type PostgresConfig struct {
	// Schema holds the route table. Default fleet.SchemaDefault, the
	// catalog's. At most
	// SchemaMaxLen bytes: the notification channel is "<schema>.routes".
	Schema string
	// PingInterval is how long the listening connection may stay quiet
	// before the provider checks it with a ping. Default
	// PingIntervalDefault; not negative.
	PingInterval time.Duration
	// RouteCacheSize bounds how many tenants' routes the provider keeps
	// in memory (least recently used out first). Default
	// RouteCacheSizeDefault; negative: no bound.
	RouteCacheSize int
	// FetchTimeout bounds the read of a route on a cache miss (the
	// evaluation's context bounds the wait too). Default
	// FetchTimeoutDefault; not negative.
	FetchTimeout time.Duration
	// Logger receives connection losses and recoveries. Default:
	// discarded.
	Logger *slog.Logger
	// Catalog, if set, is checked by Publish and PublishMany: a route to
	// an instance it does not know is refused (ErrUnknownInstance), and
	// so is one to another endpoint than its endpoint for the instance
	// (ErrEndpointMismatch), before anything is written; Forget refuses
	// to forget a route that says anything else than the catalog
	// (ErrNotForgettable). Default nil: any valid route is published,
	// and only Resolvers check it against their catalog (serving the
	// last valid route instead of a refused one). Set it wherever a
	// catalog is at hand.
	Catalog fleet.Catalog
}

// PostgresProvider keeps routes in a table of the control database
// (<schema>.routes: tenant, route jsonb, epoch, updated_at, seq) and is an
// OpenFeature provider of RouteFlagKey, a Publisher, a BatchPublisher and
// a RouteForgetter.
//
// Publish writes a route with its epoch check and a NOTIFY in one
// statement (one transaction), so a route is announced exactly when it
// commits.
//
// Routes are read on demand: an application server keeps the routes of
// the tenants it serves, not the fleet's. The first evaluation for a
// tenant reads its route with one indexed query (concurrent first
// evaluations of one tenant share it; FetchTimeout and the evaluation's
// context bound it) and caches the answer, a route or none, in a cache
// bounded by RouteCacheSize; later evaluations answer from memory. Init
// connects one listening connection and starts one goroutine that
// follows notifications for the cached tenants only (one for another
// tenant is dropped after decoding its tenant ID). Start-up therefore
// costs the same whatever the size of the table. When the listening
// connection drops (or does not answer a ping after PingInterval of
// silence), the provider emits PROVIDER_STALE, reconnects with
// exponential backoff, LISTENs again before it re-reads the cached
// tenants' routes in one query (so nothing published meanwhile is
// missed), then emits PROVIDER_READY and a configuration-changed event
// listing the tenants whose routes changed (EventMetadataTenants).
// Evaluations keep answering from memory while stale.
//
// Shutdown (called by the OpenFeature SDK) stops listening; Close also
// closes the publishing pool. It is safe for concurrent use.
type PostgresProvider struct {
	routeTable
	pool         *pgxpool.Pool
	listenCfg    *pgx.ConnConfig
	table        string // quoted
	seqName      string // quoted
	channel      string
	ping         time.Duration
	fetchTimeout time.Duration
	log          *slog.Logger
	pid          atomic.Uint32 // backend of the listening connection
	catalog      *catalogView  // nil: routes are not checked, nor forgets
	cache        *routeCache
	flight       singleflight.Group // cache misses, by tenant
	fetches      atomic.Int64
	newestSeq    atomic.Int64 // the newest write sequence number read or notified
	listening    atomic.Bool  // cache only what notifications will keep fresh

	mu     sync.Mutex
	cancel context.CancelFunc // stops the listener; nil when not listening
	done   chan struct{}      // closed when the listener has returned
	closed bool
}

var (
	_ openfeature.FeatureProvider          = (*PostgresProvider)(nil)
	_ openfeature.EventHandler             = (*PostgresProvider)(nil)
	_ openfeature.ContextAwareStateHandler = (*PostgresProvider)(nil)
	_ BatchPublisher                       = (*PostgresProvider)(nil)
	_ RouteForgetter                       = (*PostgresProvider)(nil)
)

// validate refuses the settings NewPostgresProvider cannot work with,
// naming each; nil means defaults.
func (c *PostgresConfig) validate() error {
	if c == nil {
		return nil
	}
	var errs []error
	if len(c.Schema) > SchemaMaxLen {
		errs = append(errs, fmt.Errorf("PostgresConfig.Schema %q is %d bytes: at most %d (the notification channel is \"<schema>.routes\")", c.Schema, len(c.Schema), SchemaMaxLen))
	}
	if c.PingInterval < 0 {
		errs = append(errs, fmt.Errorf("PostgresConfig.PingInterval is %s: it must not be negative (0 means %s)", c.PingInterval, PingIntervalDefault))
	}
	if c.FetchTimeout < 0 {
		errs = append(errs, fmt.Errorf("PostgresConfig.FetchTimeout is %s: it must not be negative (0 means %s)", c.FetchTimeout, FetchTimeoutDefault))
	}
	return invalidConfig(errs)
}

// NewPostgresProvider connects to the control database with connString
// (a pgxpool connection string; the pool publishes and reads routes on
// cache misses, and a separate connection made from the same settings
// listens), and creates or upgrades the route table. The provider
// follows nothing until Init. Settings it cannot work with are refused,
// before connecting, with an error wrapping ErrInvalidConfig that names
// each.
func NewPostgresProvider(ctx context.Context, connString string, cfg *PostgresConfig) (*PostgresProvider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var o PostgresConfig
	if cfg != nil {
		o = *cfg
	}
	o.Schema = cmp.Or(o.Schema, fleet.SchemaDefault)
	o.PingInterval = cmp.Or(o.PingInterval, PingIntervalDefault)
	o.RouteCacheSize = cmp.Or(o.RouteCacheSize, RouteCacheSizeDefault)
	o.FetchTimeout = cmp.Or(o.FetchTimeout, FetchTimeoutDefault)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	poolCfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("flags: parse connection string: %w", err)
	}
	p := &PostgresProvider{
		listenCfg:    poolCfg.ConnConfig.Copy(),
		table:        pgx.Identifier{o.Schema, "routes"}.Sanitize(),
		seqName:      pgx.Identifier{o.Schema, "routes_seq"}.Sanitize(),
		channel:      o.Schema + ".routes",
		ping:         o.PingInterval,
		fetchTimeout: o.FetchTimeout,
		log:          o.Logger,
		cache:        newRouteCache(max(o.RouteCacheSize, 0)),
	}
	if o.Catalog != nil {
		p.catalog = newPublishCheck(o.Catalog)
	}
	if p.listenCfg.RuntimeParams["application_name"] == "" {
		p.listenCfg.RuntimeParams["application_name"] = ListenerApplicationName
	}
	p.init("daisychain-postgres", p.find)
	if p.pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return nil, fmt.Errorf("flags: connect to the control database: %w", err)
	}
	if err := pgschema.Migrate(ctx, p.pool, o.Schema, "flags", migrations); err != nil {
		p.pool.Close()
		return nil, fmt.Errorf("flags: %w", err)
	}
	return p, nil
}

// find answers an evaluation: from the cache, else by reading the
// tenant's route (one query shared by concurrent callers), cached if the
// provider is listening.
func (p *PostgresProvider) find(ctx context.Context, tenant string) (stored, error) {
	if st, ok := p.cache.get(tenant); ok {
		return st, nil
	}
	ch := p.flight.DoChan(tenant, func() (any, error) {
		p.cache.beginFetch(tenant)
		// Apart from the first caller's context: one caller giving up
		// does not fail the others.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.fetchTimeout)
		defer cancel()
		st, err := p.fetch(fctx, tenant)
		if got, ok := p.cache.endFetch(tenant, st, err == nil, p.listening.Load()); ok {
			return got, nil
		}
		return stored{}, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return stored{}, res.Err
		}
		return res.Val.(stored), nil
	case <-ctx.Done():
		return stored{}, context.Cause(ctx)
	}
}

// fetch reads the tenant's route from the table, on a cache miss.
func (p *PostgresProvider) fetch(ctx context.Context, tenant string) (stored, error) {
	p.fetches.Add(1)
	asOf := p.newestSeq.Load() // before the read: whatever it had seen is older
	st, _, err := p.readRoute(ctx, tenant)
	if err != nil {
		return stored{}, fmt.Errorf("flags: %w", err)
	}
	if !st.found {
		st.asOf = asOf
	}
	return st, nil
}

// sawSeq records a write sequence number read or notified.
func (p *PostgresProvider) sawSeq(seq int64) {
	for {
		cur := p.newestSeq.Load()
		if seq <= cur || p.newestSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// readRoute reads the tenant's row: its route (found false if none), the
// write's sequence number, and the route's JSON as stored (Forget deletes
// the row only if it still holds it). A cache miss, Published and Forget
// all read this way.
func (p *PostgresProvider) readRoute(ctx context.Context, tenant string) (st stored, raw []byte, err error) {
	err = p.pool.QueryRow(ctx, "SELECT route, seq FROM "+p.table+" WHERE tenant = $1", tenant).Scan(&raw, &st.seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return stored{}, nil, nil
	}
	if err != nil {
		return stored{}, nil, fmt.Errorf("read the route of tenant %q: %w", tenant, err)
	}
	if st.route, err = DecodeRoute(raw); err != nil {
		return stored{}, nil, fmt.Errorf("stored route of tenant %q: %w", tenant, err)
	}
	st.found = true
	p.sawSeq(st.seq)
	return st, raw, nil
}

// CacheStats says what a PostgresProvider holds in memory and how often
// it read the table, for the host's monitoring.
type CacheStats struct {
	// Cached is how many tenants' routes (or their absence) are held.
	Cached int
	// Evictions counts tenants dropped to keep within RouteCacheSize.
	Evictions int64
	// Fetches counts reads of one tenant's route on a cache miss.
	Fetches int64
}

// CacheStats returns the provider's cache figures.
func (p *PostgresProvider) CacheStats() CacheStats {
	n, ev := p.cache.stats()
	return CacheStats{Cached: n, Evictions: ev, Fetches: p.fetches.Load()}
}

// Lookup returns the route the provider holds in memory for the tenant,
// if any, without reading the table.
func (p *PostgresProvider) Lookup(tenantID string) (Route, bool) {
	st, _ := p.cache.peek(tenantID)
	return st.route, st.found
}

// Init implements openfeature.StateHandler; see InitWithContext.
func (p *PostgresProvider) Init(ec openfeature.EvaluationContext) error {
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	return p.InitWithContext(ctx, ec)
}

// InitWithContext implements openfeature.ContextAwareStateHandler: it
// connects the listening connection, LISTENs, re-reads the routes of the
// tenants already cached (none, the first time), and starts following
// notifications. If it fails nothing is left running. Initializing a
// provider that is listening does nothing.
func (p *PostgresProvider) InitWithContext(ctx context.Context, _ openfeature.EvaluationContext) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("flags: postgres provider: %w", ErrClosed)
	}
	if p.cancel != nil {
		return nil
	}
	conn, _, err := p.connect(ctx)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	p.listening.Store(true)
	go p.listen(runCtx, conn, p.done)
	return nil
}

// Shutdown implements openfeature.StateHandler: it stops listening and
// waits for the listener to return. The provider may be initialized
// again; Publish keeps working.
func (p *PostgresProvider) Shutdown() { _ = p.ShutdownWithContext(context.Background()) }

// ShutdownWithContext implements openfeature.ContextAwareStateHandler.
func (p *PostgresProvider) ShutdownWithContext(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel == nil {
		return nil
	}
	p.listening.Store(false)
	p.cancel()
	p.cancel = nil
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops listening and closes the publishing pool. Use it when the
// provider is no longer needed, after the OpenFeature API that holds it
// (if any) is shut down.
func (p *PostgresProvider) Close() {
	p.Shutdown()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.pool.Close()
	}
}

// ListenerPID returns the server process ID of the listening connection,
// or 0 before Init: for monitoring, and for tests that cut it.
func (p *PostgresProvider) ListenerPID() uint32 { return p.pid.Load() }

// connect opens the listening connection, LISTENs, then re-reads the
// cached tenants' routes, and returns the tenants whose route changed.
func (p *PostgresProvider) connect(ctx context.Context) (*pgx.Conn, []string, error) {
	conn, err := pgx.ConnectConfig(ctx, p.listenCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("flags: connect the listener: %w", err)
	}
	fail := func(err error) (*pgx.Conn, []string, error) {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{p.channel}.Sanitize()); err != nil {
		return fail(fmt.Errorf("flags: listen: %w", err))
	}
	changed, err := p.reread(ctx, conn)
	if err != nil {
		return fail(err)
	}
	p.pid.Store(conn.PgConn().PID())
	return conn, changed, nil
}

// reread reads the routes of the cached (and pending) tenants in one
// query, applies them, drops the tenants whose route is gone, and returns
// the tenants whose route changed.
func (p *PostgresProvider) reread(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	tenants := p.cache.followedTenants()
	if len(tenants) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, "SELECT tenant, route, seq FROM "+p.table+" WHERE tenant = ANY($1)", tenants)
	if err != nil {
		return nil, fmt.Errorf("flags: re-read the cached routes: %w", err)
	}
	var tenant string
	var raw []byte
	var seq int64
	present := make(map[string]bool, len(tenants))
	var changed []string
	_, err = pgx.ForEachRow(rows, []any{&tenant, &raw, &seq}, func() error {
		r, err := DecodeRoute(raw)
		if err != nil {
			p.log.Warn("flags: skipping a stored route", "tenant", tenant, "err", err)
			return nil
		}
		present[tenant] = true
		p.sawSeq(seq)
		if p.cache.apply(tenant, stored{route: r, seq: seq, found: true}) {
			changed = append(changed, tenant)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("flags: re-read the cached routes: %w", err)
	}
	for _, t := range tenants {
		if !present[t] && p.cache.drop(t) {
			changed = append(changed, t)
		}
	}
	return changed, nil
}

// listen owns conn (a pgx.Conn is not safe for concurrent use: nothing
// else touches it) until ctx ends.
func (p *PostgresProvider) listen(ctx context.Context, conn *pgx.Conn, done chan<- struct{}) {
	defer close(done)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
		p.pid.Store(0)
	}()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, p.ping)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		if err == nil {
			p.notified(n.Payload)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if !conn.IsClosed() { // quiet for a while: is it still there?
			pingCtx, cancel := context.WithTimeout(ctx, p.ping)
			err = conn.Ping(pingCtx)
			cancel()
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return
			}
		}
		p.log.Warn("flags: listening connection lost; routes are stale until it is back", "err", err)
		p.emit(openfeature.Event{EventType: openfeature.ProviderStale, ProviderEventDetails: openfeature.ProviderEventDetails{
			Message: "listening connection lost: " + err.Error(),
		}})
		conn.Close(context.Background())
		if conn = p.reconnect(ctx); conn == nil {
			return
		}
	}
}

// reconnect retries connect until it works or ctx ends (then nil), and
// announces the recovery.
func (p *PostgresProvider) reconnect(ctx context.Context) *pgx.Conn {
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second), backoff.WithMaxElapsedTime(0))
	var conn *pgx.Conn
	var changed []string
	attempts := 0
	err := backoff.RetryNotify(func() error {
		attempts++
		actx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		var err error
		conn, changed, err = p.connect(actx)
		return err
	}, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		p.log.Warn("flags: reconnecting the listener", "err", err, "retry_in", next)
	})
	if err != nil {
		return nil
	}
	p.log.Info("flags: listening again", "attempts", attempts, "changed_routes", len(changed))
	p.emit(openfeature.Event{EventType: openfeature.ProviderReady, ProviderEventDetails: openfeature.ProviderEventDetails{
		Message: "listening again; cached routes re-read",
	}})
	if len(changed) > 0 {
		p.emit(openfeature.Event{EventType: openfeature.ProviderConfigChange, ProviderEventDetails: openfeature.ProviderEventDetails{
			Message:       fmt.Sprintf("%d routes changed while the listener was away", len(changed)),
			FlagChanges:   []string{RouteFlagKey},
			EventMetadata: map[string]any{EventMetadataTenants: changed},
		}})
	}
	return conn
}

// notification is the payload of a notification on the routes channel:
// one tenant's route (Publish), one tenant's forgotten route (Forget:
// Route is absent; the payload's "forgot", the epoch forgotten, is for
// people reading the channel), or several tenants' routes (PublishMany:
// Routes).
type notification struct {
	notifiedRoute
	Routes []notifiedRoute `json:"routes"`
}

type notifiedRoute struct {
	Tenant string          `json:"tenant"`
	Route  json.RawMessage `json:"route"`
	Seq    int64           `json:"seq"`
}

// notified applies a notification's routes to the cached tenants, and
// announces those that changed.
func (p *PostgresProvider) notified(payload string) {
	var msg notification
	if err := json.Unmarshal([]byte(payload), &msg); err != nil {
		p.log.Warn("flags: ignoring a malformed notification", "err", err)
		return
	}
	if msg.Tenant != "" {
		if st, changed := p.notifiedOne(msg.notifiedRoute); changed {
			p.routeChanged(msg.Tenant, st)
		}
		return
	}
	var changed []string
	for _, nr := range msg.Routes {
		if _, ok := p.notifiedOne(nr); ok {
			changed = append(changed, nr.Tenant)
		}
	}
	p.routesChanged(changed)
}

// notifiedOne applies one tenant's notified route, or its absence, if
// the tenant is cached; it returns what the cache holds now and whether
// that changed.
func (p *PostgresProvider) notifiedOne(nr notifiedRoute) (stored, bool) {
	p.sawSeq(nr.Seq)
	if nr.Tenant == "" || !p.cache.followed(nr.Tenant) {
		return stored{}, false
	}
	if nr.Seq == 0 { // from a publisher without sequence numbers: read it again
		return stored{}, p.cache.drop(nr.Tenant)
	}
	st := stored{seq: nr.Seq}
	if len(nr.Route) > 0 {
		r, err := DecodeRoute(nr.Route)
		if err != nil {
			p.log.Warn("flags: ignoring a malformed notified route", "tenant", nr.Tenant, "err", err)
			return stored{}, false
		}
		st.route, st.found = r, true
	}
	return st, p.cache.apply(nr.Tenant, st)
}
