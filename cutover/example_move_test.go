package cutover_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// Example moves a tenant between two local instances while an application
// writes to it through the Router, then checks the writes on the target.
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
	mover, err := cutover.New(&cutover.Config{
		Catalog:      f.Catalog,
		Publisher:    f.Publisher,
		Routes:       f.Routes,
		Journal:      f.Journal,
		WindowBudget: 5 * time.Second,
		// The application below runs in this process: under the race
		// detector, slow enough to need a longer quiet spell.
		QuietSpell: cutovertest.QuietSpell(),
	})
	if err != nil {
		log.Fatal(err)
	}

	app := cutovertest.StartWorkload(f.Router, "acme", 2)
	report, err := mover.Move(ctx, cutover.Request{Tenant: "acme", Target: "pg-b"})
	stats := app.Stop()
	if err != nil {
		log.Fatal(err)
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
	fmt.Printf("moved to %s, rolled back: %v, verified: %s\n", report.Target, report.RolledBack, report.Verified)
	fmt.Printf("application errors: %d, acknowledged writes missing: %d\n", stats.Errors, missing)
	// Output:
	// moved to pg-b, rolled back: false, verified: counts
	// application errors: 0, acknowledged writes missing: 0
}
