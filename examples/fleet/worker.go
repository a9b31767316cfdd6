package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// The environment a worker process reads its connection strings from:
// never its arguments, which any user of the machine can read (ps), and
// never printed.
const (
	envControl   = "DAISYCHAIN_FLEET_CONTROL"
	envInstances = "DAISYCHAIN_FLEET_INSTANCES" // JSON: instance ID -> admin connection string
)

// What every worker runs with. The Movers' limits must be the same in
// every worker: they are counted in the control database.
const (
	// moveTimeout is far above this example's longest move (seconds).
	// The drain takes over a dead worker's moves without waiting for it.
	moveTimeout       = 10 * time.Minute
	workerConcurrency = 2
)

// limits are the Mover settings shared by every worker, passed as
// flags.
type limits struct {
	movesPerSource, movesPerTarget int
	quietSpell                     time.Duration
}

// hostConfig is the host configuration of the parent and of every
// worker: the same catalog limits on each instance (registering is
// idempotent, so each process may register them) and the same Mover
// limits.
func hostConfig(control string, instances map[string]string, tenants int, l limits) host.Config {
	return host.Config{
		Control: control, Instances: instances,
		// Room on each target for both drains.
		Limits:         fleet.Limits{MaxTenants: int64(2 * tenants)},
		WindowBudget:   30 * time.Second,
		MovesPerSource: l.movesPerSource,
		MovesPerTarget: l.movesPerTarget,
		QuietSpell:     l.quietSpell,
		// A move job over a limit holds a River slot while it waits for
		// a move slot: not long, then it snoozes (fleetjobs' doc).
		LockWait: time.Second,
	}
}

// runWorker is one worker process: it wires the library from the
// connection strings in its environment, as a host's worker would from
// its configuration, and runs daisychain's jobs on a River client of its
// own until SIGTERM or SIGINT, then stops the client, letting running
// jobs finish.
func runWorker(ctx context.Context, id string, o options) (err error) {
	control := os.Getenv(envControl)
	var instances map[string]string
	if err := json.Unmarshal([]byte(os.Getenv(envInstances)), &instances); err != nil || control == "" {
		return fmt.Errorf("worker %s: set %s and %s (a JSON object of instance connection strings)", id, envControl, envInstances)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(stop)

	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("worker", id)
	cfg := hostConfig(control, instances, o.tenants, o.limits)
	cfg.Logger = logger
	h, err := host.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("worker %s: %w", id, err)
	}
	defer func() { err = errors.Join(err, h.Close()) }()
	planner, err := drain.New(&drain.Config{Catalog: h.Catalog, Mover: h.Mover, Journal: h.Journal})
	if err != nil {
		return err
	}
	workers := river.NewWorkers()
	if err := fleetjobs.Register(workers, &fleetjobs.Config{
		Mover: h.Mover, Journal: h.Journal, Planner: planner,
		MoveTimeout: moveTimeout, DrainPoll: time.Second, BusySnooze: time.Second, Logger: logger,
	}); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, control)
	if err != nil {
		return fmt.Errorf("worker %s: control database: %w", id, err)
	}
	defer pool.Close()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:      id,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workerConcurrency}},
		Workers: workers,
		// At or below MoveTimeout, so that MoveTimeout alone says when
		// River rescues a dead worker's move (the drain takes it over first).
		RescueStuckJobsAfter: moveTimeout,
		FetchPollInterval:    200 * time.Millisecond,
		// River's own log: its warnings and errors only.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("worker", id),
	})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	select {
	case <-stop:
	case <-ctx.Done():
	}
	return client.Stop(context.WithoutCancel(ctx))
}
