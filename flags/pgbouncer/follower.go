package pgbouncer

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/internal/eventbus"
	"github.com/daisychain-db/daisychain/internal/pgbadmin"
)

// ErrRunning: Run was called on a Follower that is already running.
var ErrRunning = errors.New("pgbouncer: the Follower is already running")

// Retry bounds of a failed round: the first retry after retryInitial,
// growing to at most retryMax.
const (
	retryInitial = 100 * time.Millisecond
	retryMax     = 30 * time.Second
)

// Follower keeps the [databases] entries of a PgBouncer equal to the
// routes of its tenants: see the package documentation. It is safe for
// concurrent use; Run runs once at a time.
type Follower struct {
	resolver *flags.Resolver
	admin    string
	file     string
	tenants  []string
	served   map[string]bool // tenants, as a set
	database func(string, flags.Route) string
	options  map[string]string
	resync   time.Duration // <= 0: never
	log      *slog.Logger
	events   eventbus.Bus[EventKind, *Event]
	running  atomic.Bool

	roundMu sync.Mutex // one round at a time; guards what follows
	conn    *pgx.Conn  // the admin console; nil until needed, and after it failed
	routes  map[string]flags.Route
	// mine are the databases whose pause is the Follower's to end: it
	// paused them, or moved their entry while paused (whoever paused
	// them held them for that move). A pause of anyone else's is left
	// alone while the entry is where the route says.
	mine map[string]bool

	wakeMu     sync.Mutex
	pending    map[string]bool // tenants named by events since the last round
	pendingAll bool            // an event named none: read every route
	wake       chan struct{}   // one wake-up pending at most
}

// New returns a Follower, or an error wrapping ErrInvalidConfig that
// names every field to fix; it connects to nothing until Run or Sync.
func New(cfg *Config) (*Follower, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	f := &Follower{
		resolver: cfg.Resolver,
		admin:    cfg.Admin,
		file:     cfg.File,
		tenants:  slices.Sorted(slices.Values(cfg.Tenants)),
		served:   map[string]bool{},
		database: cfg.Database,
		options:  maps.Clone(cfg.Options),
		resync:   cmp.Or(cfg.ResyncInterval, ResyncIntervalDefault),
		log:      cfg.Logger,
		routes:   map[string]flags.Route{},
		mine:     map[string]bool{},
		pending:  map[string]bool{},
		wake:     make(chan struct{}, 1),
	}
	for _, t := range f.tenants {
		f.served[t] = true
	}
	if f.database == nil {
		f.database = func(_ string, r flags.Route) string { return r.Endpoint.Database }
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f, nil
}

// Run follows the routes until ctx ends, then returns nil (ErrRunning if
// another Run is under way). It brings PgBouncer level with every route
// at once, then again for the tenants each provider event names, and for
// all of them every ResyncInterval and whenever an event names none. A
// round that fails (PgBouncer unreachable, a route unreadable) is
// reported (EventFailed, and the Logger) and tried again with backoff; a
// dropped admin console is connected again.
func (f *Follower) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer f.running.Store(false)
	if ev, ok := f.resolver.Client().(openfeature.IEventing); ok {
		changed := func(d openfeature.EventDetails) { f.notify(flags.EventTenants(d)) }
		ready := func(openfeature.EventDetails) { f.notify(nil) }
		ev.AddHandler(openfeature.ProviderConfigChange, &changed)
		ev.AddHandler(openfeature.ProviderReady, &ready)
		defer ev.RemoveHandler(openfeature.ProviderConfigChange, &changed)
		defer ev.RemoveHandler(openfeature.ProviderReady, &ready)
	}
	defer f.closeConsole(context.WithoutCancel(ctx))

	var resync <-chan time.Time
	if f.resync > 0 {
		t := time.NewTicker(f.resync)
		defer t.Stop()
		resync = t.C
	}
	retries := backoff.NewExponentialBackOff()
	retries.InitialInterval, retries.MaxInterval, retries.MaxElapsedTime = retryInitial, retryMax, 0
	retries.Reset()
	var retry <-chan time.Time
	f.notify(nil)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case <-retry:
		case <-resync:
			f.notify(nil)
		}
		tenants, all := f.takePending()
		if !all && len(tenants) == 0 {
			continue
		}
		if all {
			tenants = nil
		}
		err := f.round(ctx, tenants)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			retries.Reset()
			retry = nil
			continue
		}
		f.log.Warn("pgbouncer follower: round failed; retrying", "err", err)
		f.emit(&Event{Kind: EventFailed, Err: err})
		f.requeue(tenants)
		retry = time.After(retries.NextBackOff())
	}
}

// Sync brings PgBouncer level with every tenant's route once, and
// returns what failed: a command's first check, before Run, or a test's.
func (f *Follower) Sync(ctx context.Context) error {
	return f.round(ctx, nil)
}

// notify records tenants named by an event (nil or none: every tenant)
// and wakes Run. It never blocks: an event handler calls it.
func (f *Follower) notify(tenants []string) {
	f.wakeMu.Lock()
	if len(tenants) == 0 {
		f.pendingAll = true
	}
	for _, t := range tenants {
		if f.served[t] {
			f.pending[t] = true
		}
	}
	f.wakeMu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// takePending returns the tenants to read this round, or all.
func (f *Follower) takePending() ([]string, bool) {
	f.wakeMu.Lock()
	defer f.wakeMu.Unlock()
	all := f.pendingAll
	tenants := slices.Sorted(maps.Keys(f.pending))
	f.pending, f.pendingAll = map[string]bool{}, false
	return tenants, all
}

// requeue puts back the tenants of a failed round (nil: all), for its
// retry.
func (f *Follower) requeue(tenants []string) {
	f.wakeMu.Lock()
	defer f.wakeMu.Unlock()
	if tenants == nil {
		f.pendingAll = true
	}
	for _, t := range tenants {
		f.pending[t] = true
	}
}

// console returns the admin console session, connecting if needed.
func (f *Follower) console(ctx context.Context) (*pgx.Conn, error) {
	if f.conn != nil && !f.conn.IsClosed() {
		return f.conn, nil
	}
	conn, err := connectConsole(ctx, f.admin)
	if err != nil {
		return nil, err
	}
	f.conn = conn
	return conn, nil
}

// consoleFailed drops the session after an error that may have broken
// it: the next round connects again. A refusal (a *pgconn.PgError) leaves
// the session usable.
func (f *Follower) consoleFailed(ctx context.Context, err error) {
	if f.conn != nil && (!pgbadmin.Refusal(err) || f.conn.IsClosed()) {
		_ = f.conn.Close(context.WithoutCancel(ctx))
		f.conn = nil
	}
}

func (f *Follower) closeConsole(ctx context.Context) {
	f.roundMu.Lock()
	defer f.roundMu.Unlock()
	if f.conn != nil {
		_ = f.conn.Close(ctx)
		f.conn = nil
	}
}
