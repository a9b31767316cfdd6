package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/daisychain-db/daisychain/fleet"
)

func ExampleCatalog() {
	ctx := context.Background()
	var catalog fleet.Catalog = fleet.NewMemoryCatalog() // or fleet.NewPostgresCatalog
	for _, id := range []string{"pg-a", "pg-b"} {
		if err := catalog.RegisterInstance(ctx, fleet.Instance{
			ID:       id,
			Admin:    "postgres://admin:secret@" + id + ".internal:5432/postgres",
			Endpoint: fleet.Endpoint{Host: id + ".internal", Port: 5432},
			Limits:   fleet.Limits{MaxFiles: 100_000},
		}); err != nil {
			log.Fatal(err)
		}
	}
	if err := catalog.AddTenant(ctx, fleet.Tenant{ID: "acme", Database: "acme", Instance: "pg-a"}); err != nil {
		log.Fatal(err)
	}
	// A cutover records the move, on condition that the tenant is still
	// where it found it.
	if err := catalog.Assign(ctx, "acme", "pg-b", &fleet.AssignOpts{From: "pg-a"}); err != nil {
		log.Fatal(err)
	}
	err := catalog.Assign(ctx, "acme", "pg-a", &fleet.AssignOpts{From: "pg-a"})
	fmt.Println(errors.Is(err, fleet.ErrAssignConflict))

	t, _ := catalog.Locate(ctx, "acme")
	inst, _ := catalog.Instance(ctx, t.Instance)
	fmt.Println(t.ID, "is on", inst) // an Instance prints without its Admin secret
	// Output:
	// true
	// acme is on instance pg-b (pg-b.internal:5432)
}
