package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// Config is what a host application knows: connection strings, from its
// own configuration or secret store, and how it wants moves run.
type Config struct {
	// Control is the control database: catalog, routes, journal.
	Control string
	// Instances maps an instance ID to the admin connection string the
	// library uses on it (a role that may create databases, publications
	// and subscriptions). Each is registered in the catalog, with Limits.
	Instances map[string]string
	// Limits of every instance registered. Default: none.
	Limits fleet.Limits
	// Converter builds the replica of an instance for a conversion.
	// Default nil: no conversions.
	Converter replica.Converter
	// WindowBudget bounds each window. Default 5 s.
	WindowBudget time.Duration
	// MovesPerSource and MovesPerTarget are the Mover's limits on the
	// moves out of one instance and into one, across every process
	// sharing the control database (cutover.Config's). Default 0: none.
	MovesPerSource, MovesPerTarget int
	// LockWait is how long a move waits for its locks and slots
	// (cutover.Config's). Default cutover.LockWaitDefault.
	LockWait time.Duration
	// QuietSpell is the quiesce step's quiet spell (cutover.Config's):
	// raise it when the application's clients can be slow between taking
	// a connection from the Router and using it (a starved machine, the
	// race detector). Default cutover.QuietSpellDefault.
	QuietSpell time.Duration
	// Logger for the library. Nil discards.
	Logger *slog.Logger
}

// Host is everything an application that embeds daisychain wires once at
// start.
type Host struct {
	Catalog *fleet.PostgresCatalog
	Journal *cutover.PostgresJournal
	Router  *flags.Router
	Mover   *cutover.Mover

	instances map[string]string
	pool      *pgxpool.Pool
	provider  *flags.PostgresProvider
	api       *openfeature.EvaluationAPI
}

// Open wires a Host from connection strings. On error nothing is left
// open. Close it.
func Open(ctx context.Context, cfg Config) (_ *Host, err error) {
	h := &Host{instances: cfg.Instances}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	for id, conn := range cfg.Instances {
		if _, err := pgconn.ParseConfig(conn); err != nil {
			// pgconn's parse errors may quote the string; name only the ID.
			return nil, fmt.Errorf("host: instance %q: the connection string does not parse", id)
		}
	}

	if h.pool, err = pgxpool.New(ctx, cfg.Control); err != nil {
		return nil, fmt.Errorf("host: control database: %w", err)
	}
	// Passwords are kept here, in the host, never in the catalog: the
	// catalog strips them when it stores an instance and asks the host
	// for them when it hands one out.
	if h.Catalog, err = fleet.NewPostgresCatalog(ctx, h.pool, &fleet.PostgresCatalogConfig{
		AdminPassword: func(_ context.Context, id string) (string, error) { return h.password(id), nil },
	}); err != nil {
		return nil, err
	}
	if err := registerInstances(ctx, h.Catalog, cfg.Instances, cfg.Limits); err != nil {
		return nil, err
	}
	if h.Journal, err = cutover.NewPostgresJournal(ctx, h.pool, nil); err != nil {
		return nil, err
	}

	// One provider serves both sides of this process: it publishes the
	// mover's routes and, through OpenFeature, answers the application's
	// evaluations from memory, following other processes' publishes by
	// LISTEN/NOTIFY. An isolated API, never the global singleton: the
	// host may use OpenFeature for its own flags.
	if h.provider, err = flags.NewPostgresProvider(ctx, cfg.Control, &flags.PostgresConfig{
		// With the catalog, a route to an unknown instance or endpoint is
		// refused before it is written.
		Catalog: h.Catalog,
		Logger:  cfg.Logger,
	}); err != nil {
		return nil, err
	}
	h.api = isolated.NewAPI()
	if err := h.api.SetProviderAndWait(ctx, h.provider); err != nil {
		return nil, fmt.Errorf("host: route provider: %w", err)
	}
	resolver, err := flags.NewResolver(h.api.NewClient(), h.Catalog, nil)
	if err != nil {
		return nil, err
	}

	// The application's own credentials for each instance: here the
	// admin connection strings', with the pool settings the host wants.
	// The Router points each connection at the route's endpoint.
	h.Router, err = flags.NewRouter(&flags.RouterConfig{
		Resolver: resolver,
		PoolConfig: func(_ context.Context, r flags.Route) (*pgxpool.Config, error) {
			conn, ok := h.credentials(r.Instance)
			if !ok {
				return nil, fmt.Errorf("host: no credentials for instance %q", r.Instance)
			}
			pc, err := pgxpool.ParseConfig(conn)
			if err != nil {
				return nil, fmt.Errorf("host: instance %q: the connection string does not parse", r.Instance)
			}
			pc.MaxConns = 8
			return pc, nil
		},
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}

	budget := cfg.WindowBudget
	if budget == 0 {
		budget = 5 * time.Second
	}
	h.Mover, err = cutover.New(&cutover.Config{
		Catalog:        h.Catalog,
		Publisher:      h.provider,
		Routes:         resolver,
		Journal:        h.Journal,
		Converter:      cfg.Converter,
		WindowBudget:   budget,
		MovesPerSource: cfg.MovesPerSource,
		MovesPerTarget: cfg.MovesPerTarget,
		LockWait:       cfg.LockWait,
		QuietSpell:     cfg.QuietSpell,
		Logger:         cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// credentials returns the connection string of an instance's roles. A
// converted instance ("pg-1.1", the drain chain's default name for the
// replica of "pg-1") is a copy of its source, roles and passwords
// included, so it has its source's.
func (h *Host) credentials(id string) (string, bool) {
	if conn, ok := h.instances[id]; ok {
		return conn, true
	}
	source, _, converted := strings.Cut(id, ".")
	if !converted {
		return "", false
	}
	conn, ok := h.instances[source]
	return conn, ok
}

// password is the admin password of an instance, for the catalog.
func (h *Host) password(id string) string {
	conn, ok := h.credentials(id)
	if !ok {
		return ""
	}
	pc, err := pgconn.ParseConfig(conn)
	if err != nil {
		return ""
	}
	return pc.Password
}

// registerInstances records each instance in the catalog, with the
// endpoint applications use (here the admin connection's host and port)
// and limits. Registering is idempotent, so every host start may do it.
func registerInstances(ctx context.Context, catalog fleet.Catalog, instances map[string]string, limits fleet.Limits) error {
	ids := make([]string, 0, len(instances))
	for id := range instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		pc, err := pgconn.ParseConfig(instances[id])
		if err != nil {
			return fmt.Errorf("host: instance %q: the connection string does not parse", id)
		}
		if err := catalog.RegisterInstance(ctx, fleet.Instance{
			ID: id, Admin: instances[id], Limits: limits,
			Endpoint: fleet.Endpoint{Host: pc.Host, Port: int(pc.Port)},
		}); err != nil {
			return err
		}
	}
	return nil
}

// Close releases everything Open wired, in reverse order.
func (h *Host) Close() error {
	var errs []error
	if h.Router != nil {
		h.Router.Close()
	}
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
