package physical_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/physical"
)

// A whole instance converted: start the replica, wait until it has caught
// up, fence the source (here: nobody writes any more), wait for the
// barrier, promote.
func Example() {
	ctx := context.Background()
	// localpg bounds the WAL a slot may keep, as Preflight requires.
	src, err := localpg.Start(ctx, &localpg.Config{Name: "old"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	for _, db := range []string{"tenant_1", "tenant_2"} {
		if err := src.CreateDatabase(ctx, db); err != nil {
			log.Fatal(err)
		}
		conn, err := src.Connect(ctx, db)
		if err != nil {
			log.Fatal(err)
		}
		_, err = conn.Exec(ctx, `CREATE TABLE notes (id serial PRIMARY KEY, body text);
			INSERT INTO notes (body) SELECT 'note ' || i FROM generate_series(1, 100) i`)
		conn.Close(ctx)
		if err != nil {
			log.Fatal(err)
		}
	}

	var conv physical.Converter
	cv, err := conv.Start(ctx, replica.ConvertSpec{ID: "old-to-new", Source: src.ConnString("postgres")})
	if err != nil {
		log.Fatal(err)
	}
	pos, err := cv.Barrier(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := cv.WaitFor(ctx, pos); err != nil { // waits for the copy, then the replay
		log.Fatal(err)
	}
	if err := cv.Promote(ctx); err != nil {
		log.Fatal(err)
	}
	defer cv.(*physical.Conversion).LocalInstance().Close()

	cfg, err := pgx.ParseConfig(cv.AdminConnString())
	if err != nil {
		log.Fatal(err)
	}
	cfg.Database = "tenant_2"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	var inRecovery bool
	if _, err := conn.Exec(ctx, `INSERT INTO notes (body) VALUES ('on the new primary')`); err != nil {
		log.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*), pg_is_in_recovery() FROM notes`).Scan(&n, &inRecovery); err != nil {
		log.Fatal(err)
	}
	fmt.Println("notes:", n, "in recovery:", inRecovery)
	// Output: notes: 101 in recovery: false
}
