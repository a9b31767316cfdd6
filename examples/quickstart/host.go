package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// HostConfig is what a host application knows: connection strings, from
// its own configuration or secret store.
type HostConfig struct {
	// Control is the control database: catalog, routes, journal.
	Control string
	// Instances maps an instance ID to the admin connection string the
	// library uses on it (a role that may create databases, publications
	// and subscriptions).
	Instances map[string]string
	// Logger for the library. Nil discards.
	Logger *slog.Logger
}

// Host is everything an application that embeds daisychain wires once at
// start: the catalog, the route provider behind an OpenFeature API of its
// own, the Resolver, the Router its request handlers take connections
// from, the journal and the Mover.
type Host struct {
	Catalog *fleet.PostgresCatalog
	Router  *flags.Router
	Mover   *cutover.Mover

	pool     *pgxpool.Pool
	provider *flags.PostgresProvider
	api      *openfeature.EvaluationAPI
}

// OpenHost wires a Host from connection strings. On error nothing is left
// open. Close it.
func OpenHost(ctx context.Context, cfg HostConfig) (_ *Host, err error) {
	h := &Host{}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	// Passwords are kept here, in the host, never in the catalog: the
	// catalog strips them when it stores an instance and asks the host
	// for them when it hands one out.
	passwords := map[string]string{}
	for id, conn := range cfg.Instances {
		pc, err := pgconn.ParseConfig(conn)
		if err != nil {
			// pgconn's parse errors may quote the string; name only the ID.
			return nil, fmt.Errorf("quickstart: instance %q: the connection string does not parse", id)
		}
		passwords[id] = pc.Password
	}

	if h.pool, err = pgxpool.New(ctx, cfg.Control); err != nil {
		return nil, fmt.Errorf("quickstart: control database: %w", err)
	}
	if h.Catalog, err = fleet.NewPostgresCatalog(ctx, h.pool, &fleet.PostgresCatalogConfig{
		AdminPassword: func(_ context.Context, id string) (string, error) { return passwords[id], nil },
	}); err != nil {
		return nil, err
	}
	if err := registerInstances(ctx, h.Catalog, cfg.Instances); err != nil {
		return nil, err
	}
	journal, err := cutover.NewPostgresJournal(ctx, h.pool, nil)
	if err != nil {
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
		return nil, fmt.Errorf("quickstart: route provider: %w", err)
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
			conn, ok := cfg.Instances[r.Instance]
			if !ok {
				return nil, fmt.Errorf("quickstart: no credentials for instance %q", r.Instance)
			}
			pc, err := pgxpool.ParseConfig(conn)
			if err != nil {
				return nil, fmt.Errorf("quickstart: instance %q: the connection string does not parse", r.Instance)
			}
			pc.MaxConns = 8
			return pc, nil
		},
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}

	h.Mover, err = cutover.New(&cutover.Config{
		Catalog:      h.Catalog,
		Publisher:    h.provider,
		Routes:       resolver,
		Journal:      journal,
		WindowBudget: 5 * time.Second,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// registerInstances records each instance in the catalog, with the
// endpoint applications use: here the admin connection's host and port.
// Registering is idempotent, so every host start may do it.
func registerInstances(ctx context.Context, catalog fleet.Catalog, instances map[string]string) error {
	ids := make([]string, 0, len(instances))
	for id := range instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		pc, err := pgconn.ParseConfig(instances[id])
		if err != nil {
			return fmt.Errorf("quickstart: instance %q: the connection string does not parse", id)
		}
		if err := catalog.RegisterInstance(ctx, fleet.Instance{
			ID: id, Admin: instances[id],
			Endpoint: fleet.Endpoint{Host: pc.Host, Port: int(pc.Port)},
		}); err != nil {
			return err
		}
	}
	return nil
}

// Close releases everything OpenHost wired, in reverse order.
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
