package pgbouncer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/pgbouncer"
	"github.com/daisychain-db/daisychain/fleet"
)

// A process beside PgBouncer follows the routes of the tenants it serves,
// read from the control database, until it is interrupted. Passwords
// come from the environment or .pgpass, never from the code.
func Example_follow() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	control := "postgres://daisychain@control.internal/daisychain"
	pool, err := pgxpool.New(ctx, control)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	catalog, err := fleet.NewPostgresCatalog(ctx, pool, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	routes, err := flags.NewPostgresProvider(ctx, control, &flags.PostgresConfig{Catalog: catalog})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer routes.Close()
	api := isolated.NewAPI() // never the global singleton
	defer func() { _ = api.Shutdown(context.WithoutCancel(ctx)) }()
	if err := api.SetProviderAndWait(ctx, routes); err != nil {
		fmt.Println(err)
		return
	}
	resolver, err := flags.NewResolver(api.NewClient(), catalog, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	follower, err := pgbouncer.New(&pgbouncer.Config{
		Resolver: resolver,
		Admin:    "postgres://daisychain@127.0.0.1:6432/pgbouncer",
		File:     "/etc/pgbouncer/daisychain.ini", // pgbouncer.ini ends with %include /etc/pgbouncer/daisychain.ini
		Tenants:  []string{"acme", "globex"},
		Options:  map[string]string{"pool_size": "20"},
		Logger:   slog.Default(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := follower.Sync(ctx); err != nil { // fail fast on a wrong setup
		fmt.Println(err)
		return
	}
	if err := follower.Run(ctx); err != nil {
		fmt.Println(err)
	}
}

// New refuses a Config it cannot work with, naming what to fix, before
// touching anything.
func ExampleNew() {
	ctx := context.Background()
	catalog := fleet.NewMemoryCatalog()
	api := isolated.NewAPI()
	defer func() { _ = api.Shutdown(ctx) }()
	if err := api.SetProviderAndWait(ctx, flags.NewMemoryProvider()); err != nil {
		fmt.Println(err)
		return
	}
	resolver, err := flags.NewResolver(api.NewClient(), catalog, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = pgbouncer.New(&pgbouncer.Config{
		Resolver: resolver,
		Admin:    "postgres://daisychain@127.0.0.1:6432/pgbouncer",
		File:     os.TempDir() + "/daisychain.ini",
		Tenants:  []string{"acme"},
		Options:  map[string]string{"password": "hunter2"},
	})
	fmt.Println(err)
	// Output:
	// pgbouncer: invalid config: Config.Options sets password: passwords stay out of the file (use PgBouncer's auth_file or auth_query)
}
