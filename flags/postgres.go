package flags

import (
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

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/pgschema"
)

const (
	// SchemaDefault is the schema of the route table in the control
	// database, unless PostgresOptions.Schema says otherwise.
	SchemaDefault = "daisychain"

	// PingIntervalDefault is how long the listening connection may stay
	// quiet before the provider checks it with a ping, unless
	// PostgresOptions.PingInterval says otherwise.
	PingIntervalDefault = 5 * time.Second

	// ListenerApplicationName is the application_name of the listening
	// connection when the connection string sets none, so that it can be
	// told apart in pg_stat_activity.
	ListenerApplicationName = "daisychain-flags-listener"

	// initTimeout bounds Init when the SDK gives no context.
	initTimeout = 30 * time.Second
	// connectTimeout bounds one attempt to connect, LISTEN and load.
	connectTimeout = 10 * time.Second
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
}

// PostgresOptions are optional settings of a PostgresProvider; nil means
// defaults.
type PostgresOptions struct {
	// Schema holds the route table. Default SchemaDefault. At most 56
	// bytes: the notification channel is "<schema>.routes".
	Schema string
	// PingInterval: see PingIntervalDefault.
	PingInterval time.Duration
	// Logger receives connection losses and recoveries. Default:
	// discarded.
	Logger *slog.Logger
	// Catalog, if set, is checked by Publish: a route to an instance it
	// does not know is refused (ErrUnknownInstance), and so is one to
	// another endpoint than its endpoint for the instance
	// (ErrEndpointMismatch), before anything is written. Default nil: any
	// valid route is published, and only Resolvers check it against their
	// catalog (serving the last valid route instead of a refused one).
	// Set it wherever a catalog is at hand.
	Catalog fleet.Catalog
}

// PostgresProvider keeps routes in a table of the control database
// (<schema>.routes: tenant, route jsonb, epoch, updated_at) and is both an
// OpenFeature provider of RouteFlagKey and a Publisher.
//
// Publish writes a route with its epoch check and a NOTIFY in one
// statement (one transaction), so a route is announced exactly when it
// commits. Init loads every route into memory and starts one goroutine
// that LISTENs on a dedicated connection and applies the notifications;
// evaluations never query. When the listening connection drops (or does
// not answer a ping after PingInterval of silence), the provider emits
// PROVIDER_STALE, reconnects with exponential backoff, LISTENs again
// before it reloads the whole table (so nothing published meanwhile is
// missed), then emits PROVIDER_READY and a configuration-changed event
// listing the tenants whose routes changed (EventMetadataTenants).
// Evaluations keep answering from memory while stale.
//
// Shutdown (called by the OpenFeature SDK) stops listening; Close also
// closes the publishing pool. It is safe for concurrent use.
type PostgresProvider struct {
	routeTable
	pool      *pgxpool.Pool
	listenCfg *pgx.ConnConfig
	table     string // quoted
	channel   string
	ping      time.Duration
	log       *slog.Logger
	pid       atomic.Uint32 // backend of the listening connection
	catalog   *catalogView  // nil: routes are not checked

	mu     sync.Mutex
	cancel context.CancelFunc // stops the listener; nil when not listening
	done   chan struct{}      // closed when the listener has returned
	closed bool
}

var (
	_ openfeature.FeatureProvider          = (*PostgresProvider)(nil)
	_ openfeature.EventHandler             = (*PostgresProvider)(nil)
	_ openfeature.ContextAwareStateHandler = (*PostgresProvider)(nil)
	_ Publisher                            = (*PostgresProvider)(nil)
)

// NewPostgresProvider connects to the control database with connString
// (a pgxpool connection string; the pool publishes, and a separate
// connection made from the same settings listens), and creates or
// upgrades the route table. The provider reads nothing until Init.
func NewPostgresProvider(ctx context.Context, connString string, opts *PostgresOptions) (*PostgresProvider, error) {
	var o PostgresOptions
	if opts != nil {
		o = *opts
	}
	if o.Schema == "" {
		o.Schema = SchemaDefault
	}
	if len(o.Schema) > 56 {
		return nil, fmt.Errorf("flags: schema name %q is longer than 56 bytes", o.Schema)
	}
	if o.PingInterval <= 0 {
		o.PingInterval = PingIntervalDefault
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("flags: parse connection string: %w", err)
	}
	p := &PostgresProvider{
		listenCfg: cfg.ConnConfig.Copy(),
		table:     pgx.Identifier{o.Schema, "routes"}.Sanitize(),
		channel:   o.Schema + ".routes",
		ping:      o.PingInterval,
		log:       o.Logger,
	}
	if o.Catalog != nil {
		p.catalog = newPublishCheck(o.Catalog)
	}
	if p.listenCfg.RuntimeParams["application_name"] == "" {
		p.listenCfg.RuntimeParams["application_name"] = ListenerApplicationName
	}
	p.init("daisychain-postgres")
	if p.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("flags: connect to the control database: %w", err)
	}
	if err := pgschema.Migrate(ctx, p.pool, o.Schema, "flags", migrations); err != nil {
		p.pool.Close()
		return nil, fmt.Errorf("flags: %w", err)
	}
	return p, nil
}

// Publish implements Publisher: one statement inserts or updates the
// tenant's row only if the epoch is greater, and notifies listeners in
// the same transaction. An epoch not greater than the stored one is
// ErrStaleEpoch. With PostgresOptions.Catalog, a route the catalog does
// not back is refused and nothing is written. The route is also applied
// to this provider's memory at once.
func (p *PostgresProvider) Publish(ctx context.Context, tenantID string, r Route) error {
	if err := checkPublish(ctx, p.catalog, tenantID, r); err != nil {
		return err
	}
	routeJSON, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("flags: encode route: %w", err)
	}
	tag, err := p.pool.Exec(ctx, `WITH up AS (
		INSERT INTO `+p.table+` AS cur (tenant, route, epoch, updated_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (tenant) DO UPDATE
			SET route = excluded.route, epoch = excluded.epoch, updated_at = excluded.updated_at
			WHERE cur.epoch < excluded.epoch
		RETURNING tenant, route)
	SELECT pg_notify($4, json_build_object('tenant', tenant, 'route', route)::text) FROM up`,
		tenantID, routeJSON, r.Epoch, p.channel)
	if err != nil {
		return fmt.Errorf("flags: publish route of tenant %q: %w", tenantID, err)
	}
	if tag.RowsAffected() == 0 {
		var held int64
		if err := p.pool.QueryRow(ctx, "SELECT epoch FROM "+p.table+" WHERE tenant = $1", tenantID).Scan(&held); err != nil {
			return fmt.Errorf("%w: tenant %q, refused epoch %d (reading the current one: %v)", ErrStaleEpoch, tenantID, r.Epoch, err)
		}
		return staleEpoch(tenantID, held, r.Epoch)
	}
	if applied, _ := p.apply(tenantID, r); applied {
		p.routeChanged(tenantID, r)
	}
	return nil
}

// Init implements openfeature.StateHandler; see InitWithContext.
func (p *PostgresProvider) Init(ec openfeature.EvaluationContext) error {
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	return p.InitWithContext(ctx, ec)
}

// InitWithContext implements openfeature.ContextAwareStateHandler: it
// connects the listening connection, LISTENs, loads every route, and
// starts following notifications. If it fails nothing is left running.
// Initializing a provider that is listening does nothing.
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

// connect opens the listening connection, LISTENs, then loads every
// route, and returns the tenants whose route changed in memory.
func (p *PostgresProvider) connect(ctx context.Context) (conn *pgx.Conn, changed []string, err error) {
	conn, err = pgx.ConnectConfig(ctx, p.listenCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("flags: connect the listener: %w", err)
	}
	defer func() {
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
			conn = nil
		}
	}()
	if _, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{p.channel}.Sanitize()); err != nil {
		return nil, nil, fmt.Errorf("flags: listen: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT tenant, route FROM "+p.table)
	if err != nil {
		return nil, nil, fmt.Errorf("flags: load routes: %w", err)
	}
	var tenant string
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&tenant, &raw}, func() error {
		r, err := DecodeRoute(raw)
		if err != nil {
			p.log.Warn("flags: skipping a stored route", "tenant", tenant, "err", err)
			return nil
		}
		if applied, _ := p.apply(tenant, r); applied {
			changed = append(changed, tenant)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("flags: load routes: %w", err)
	}
	p.pid.Store(conn.PgConn().PID())
	return conn, changed, nil
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
		Message: "listening again; routes reloaded",
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

// notified applies one notification's route.
func (p *PostgresProvider) notified(payload string) {
	var msg struct {
		Tenant string          `json:"tenant"`
		Route  json.RawMessage `json:"route"`
	}
	err := json.Unmarshal([]byte(payload), &msg)
	var r Route
	if err == nil {
		r, err = DecodeRoute(msg.Route)
	}
	if err == nil && msg.Tenant == "" {
		err = errors.New("no tenant")
	}
	if err != nil {
		p.log.Warn("flags: ignoring a malformed notification", "err", err)
		return
	}
	if applied, _ := p.apply(msg.Tenant, r); applied {
		p.routeChanged(msg.Tenant, r)
	}
}

// Published reads the route stored for the tenant in the control database
// (not this provider's memory, which may trail it): the authoritative
// answer to whether a Publish that was cut off went through.
func (p *PostgresProvider) Published(ctx context.Context, tenantID string) (Route, bool, error) {
	var raw []byte
	err := p.pool.QueryRow(ctx, "SELECT route FROM "+p.table+" WHERE tenant = $1", tenantID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Route{}, false, nil
	}
	if err != nil {
		return Route{}, false, fmt.Errorf("flags: read the published route of tenant %q: %w", tenantID, err)
	}
	r, err := DecodeRoute(raw)
	if err != nil {
		return Route{}, false, fmt.Errorf("flags: published route of tenant %q: %w", tenantID, err)
	}
	return r, true, nil
}
