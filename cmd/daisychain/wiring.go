package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// fleetHandle is the library wired from the control database, as a host
// application wires it (examples/internal/host): the catalog, the
// journal, and for the commands that move tenants the route provider,
// the resolver, the Mover and the drain Runner.
type fleetHandle struct {
	pool    *pgxpool.Pool
	catalog *fleet.PostgresCatalog
	journal *cutover.PostgresJournal

	provider *flags.PostgresProvider
	api      *openfeature.EvaluationAPI
	mover    *cutover.Mover
	runner   *drain.Runner
	logger   *slog.Logger
}

// openControl connects to the control database and opens its catalog
// and journal (creating their tables on first use). Close it.
func openControl(ctx context.Context, g *globals, stderr io.Writer) (_ *fleetHandle, err error) {
	if g.control.value == "" {
		return nil, usagef("no control database: set --control or $%s to its connection string (without the password: PGPASSWORD or ~/.pgpass has it)", ControlEnv)
	}
	pc, err := pgxpool.ParseConfig(g.control.value)
	if err != nil {
		// pgconn's parse errors may quote the string: name only the flag.
		return nil, usagef("--control: the connection string does not parse: write it as a postgres:// URL or as key=value pairs")
	}
	pc.MaxConns = 8
	h := &fleetHandle{logger: slog.New(slog.DiscardHandler)}
	if g.verbose {
		h.logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, h.Close())
		}
	}()
	if h.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("control database: %w", err)
	}
	if err := h.pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("control database: %w", err)
	}
	// No AdminPassword: the catalog hands out instances' connection
	// strings without passwords, and pgx finds them as libpq does.
	if h.catalog, err = fleet.NewPostgresCatalog(ctx, h.pool, nil); err != nil {
		return nil, err
	}
	if h.journal, err = cutover.NewPostgresJournal(ctx, h.pool, nil); err != nil {
		return nil, err
	}
	return h, nil
}

// moverFlags are the flags of the commands that move tenants.
type moverFlags struct {
	windowBudget time.Duration
	lockWait     time.Duration
	concurrency  int
	keepSources  bool
}

func (m *moverFlags) register(fs *flag.FlagSet, runner bool) {
	fs.DurationVar(&m.windowBudget, "window-budget", 10*time.Second, "bound on each window; a window over it rolls its move back")
	fs.DurationVar(&m.lockWait, "lock-wait", cutover.LockWaitDefault, "how long to wait for a tenant or instance another mover holds")
	if runner {
		fs.IntVar(&m.concurrency, "concurrency", drain.ConcurrencyDefault, "moves run at once")
		fs.BoolVar(&m.keepSources, "keep-sources", false, "keep each moved tenant's source copy, fenced, for retire (default: retired once its move is done)")
	}
}

func (m *moverFlags) validate() error {
	if m.windowBudget <= 0 {
		return usagef("--window-budget %s: give a positive duration, as 10s", m.windowBudget)
	}
	if m.lockWait < 0 {
		return usagef("--lock-wait %s: give a duration of 0 or more", m.lockWait)
	}
	if m.concurrency < 0 {
		return usagef("--concurrency %d: give 1 or more", m.concurrency)
	}
	return nil
}

// openRoutes wires the route provider and a resolver over it on h.
// catalogTTL is the resolver's (flags.ResolverConfig.CatalogTTL).
func (h *fleetHandle) openRoutes(ctx context.Context, g *globals, catalogTTL time.Duration) (*flags.Resolver, error) {
	var err error
	// The provider publishes the mover's routes and answers the
	// resolver; with the catalog it refuses a route to an instance or an
	// endpoint that is not registered.
	if h.provider, err = flags.NewPostgresProvider(ctx, g.control.value, &flags.PostgresConfig{Catalog: h.catalog, Logger: h.logger}); err != nil {
		return nil, fmt.Errorf("route provider: %w", err)
	}
	// An isolated API, never OpenFeature's global singleton.
	h.api = isolated.NewAPI()
	if err := h.api.SetProviderAndWait(ctx, h.provider); err != nil {
		return nil, fmt.Errorf("route provider: %w", err)
	}
	return flags.NewResolver(h.api.NewClient(), h.catalog, &flags.ResolverConfig{CatalogTTL: catalogTTL, Logger: h.logger})
}

// openMover wires the route provider, the resolver, the Mover and the
// drain Runner on h. converter may be nil (no conversions).
func (h *fleetHandle) openMover(ctx context.Context, g *globals, m *moverFlags, converter replica.Converter) error {
	// A command's moves read the catalog fresh each time: it runs once,
	// and other processes may move tenants meanwhile.
	resolver, err := h.openRoutes(ctx, g, -1)
	if err != nil {
		return err
	}
	if h.mover, err = cutover.New(&cutover.Config{
		Catalog:      h.catalog,
		Publisher:    h.provider,
		Routes:       resolver,
		Journal:      h.journal,
		Converter:    converter,
		WindowBudget: m.windowBudget,
		LockWait:     m.lockWait,
		Logger:       h.logger,
	}); err != nil {
		return err
	}
	h.runner, err = drain.New(&drain.Config{
		Catalog:     h.catalog,
		Mover:       h.mover,
		Journal:     h.journal,
		Concurrency: m.concurrency,
		KeepSources: m.keepSources,
		Logger:      h.logger,
	})
	return err
}

// withMover checks the mover's flags, opens the fleet with a Mover, and
// runs fn.
func withMover(ctx context.Context, inv *invocation, mf *moverFlags, converter replica.Converter, fn func(h *fleetHandle) error) (err error) {
	if err := mf.validate(); err != nil {
		return err
	}
	h, err := openControl(ctx, inv.g, inv.stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, h.Close()) }()
	if err := h.openMover(ctx, inv.g, mf, converter); err != nil {
		return err
	}
	if inv.g.metricsListen != "" {
		stop, err := serveMetrics(inv.g.metricsListen, h.mover)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, stop()) }()
	}
	return fn(h)
}

// Close releases what was opened, in reverse order.
func (h *fleetHandle) Close() error {
	var errs []error
	if h.api != nil {
		errs = append(errs, h.api.Shutdown(context.Background()))
	}
	if h.provider != nil {
		h.provider.Close()
	}
	if h.pool != nil {
		h.pool.Close()
	}
	return errors.Join(errs...)
}
