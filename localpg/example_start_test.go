package localpg_test

import (
	"context"
	"fmt"
	"log"

	"github.com/daisychain-db/daisychain/localpg"
)

func ExampleStart() {
	ctx := context.Background()
	inst, err := localpg.Start(ctx, &localpg.Config{Name: "example", Password: "example-pw"})
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()

	if err := inst.CreateDatabase(ctx, "tenant_1"); err != nil {
		log.Fatal(err)
	}
	conn, err := inst.Connect(ctx, "tenant_1")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	var db, walLevel string
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_setting('wal_level')").Scan(&db, &walLevel); err != nil {
		log.Fatal(err)
	}
	fmt.Println(db, walLevel)
	// Output: tenant_1 logical
}
