package fleetjobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// Example is a worker process: it migrates River's tables into the
// control database, registers daisychain's jobs into its own River
// client, enqueues a tenant move (twice: one job) and waits for it, while
// an application writes to the tenant through the Router.
func Example() {
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, nil) // control, pg-a, pg-b
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := f.AddTenant(ctx, "acme", "acme", "pg-a", `CREATE TABLE notes (id serial PRIMARY KEY, body text)`); err != nil {
		log.Fatal(err)
	}

	// The host's side: a pool to the control database, River's tables
	// there, the host's Mover, and the host's own River client.
	pool, err := pgxpool.New(ctx, f.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := fleetjobs.Migrate(ctx, pool, nil); err != nil {
		log.Fatal(err)
	}
	mover, err := cutover.New(&cutover.Config{
		Catalog: f.Catalog, Publisher: f.Publisher, Routes: f.Routes, Journal: f.Journal,
		WindowBudget: 5 * time.Second,
		// The application below runs in this process: under the race
		// detector, slow enough to need a longer quiet spell.
		QuietSpell: cutovertest.QuietSpell(),
	})
	if err != nil {
		log.Fatal(err)
	}
	workers := river.NewWorkers()
	if err := fleetjobs.Register(workers, &fleetjobs.Config{Mover: mover, Journal: f.Journal}); err != nil {
		log.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers: workers,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer client.Stop(ctx)
	finished, stop := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobCancelled, river.EventKindJobFailed)
	defer stop()

	app := cutovertest.StartWorkload(f.Router, "acme", 2)
	move := fleetjobs.MoveArgs{MoveID: "acme-to-pg-b", Tenant: "acme", Target: "pg-b"}
	first, err := fleetjobs.Insert(ctx, client, move, nil)
	if err != nil {
		log.Fatal(err)
	}
	again, err := fleetjobs.Insert(ctx, client, move, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("second insert is the same job: %v\n", again.UniqueSkippedAsDuplicate && again.Job.ID == first.Job.ID)

	ev := <-finished
	stats := app.Stop()
	var out fleetjobs.Output
	if err := json.Unmarshal(ev.Job.Output(), &out); err != nil {
		log.Fatal(ev.Kind, ev.Job.Errors, err)
	}
	target, err := f.Instances["pg-b"].Connect(ctx, "acme")
	if err != nil {
		log.Fatal(err)
	}
	defer target.Close(ctx)
	missing, err := app.Missing(ctx, target)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("job %s: %s to %s\n", ev.Job.State, out.Decision, out.Report.Target)
	fmt.Printf("application errors: %d, acknowledged writes missing: %d\n", stats.Errors, missing)
	// Output:
	// second insert is the same job: true
	// job completed: moved to pg-b
	// application errors: 0, acknowledged writes missing: 0
}
