package logical_test

import (
	"context"
	"fmt"
	"log"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// A tenant database moved to another instance: start the stream, let it
// catch up, fence the source, wait for the barrier, sync sequences,
// verify, finish.
func Example() {
	ctx := context.Background()
	// Preflight wants the source to bound the WAL a slot may keep.
	src, err := localpg.Start(ctx, &localpg.Config{Name: "old"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	dst, err := localpg.Start(ctx, &localpg.Config{Name: "new"})
	if err != nil {
		log.Fatal(err)
	}
	defer dst.Close()
	if err := src.CreateDatabase(ctx, "tenant_42"); err != nil {
		log.Fatal(err)
	}
	conn, err := src.Connect(ctx, "tenant_42")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE notes (id serial PRIMARY KEY, body text);
		INSERT INTO notes (body) SELECT 'note ' || i FROM generate_series(1, 1000) i`); err != nil {
		log.Fatal(err)
	}

	var p logical.Provider
	spec := replica.Spec{
		ID:     "tenant-42",
		Source: src.ConnString("postgres"), SourceDatabase: "tenant_42",
		Target: dst.ConnString("postgres"), TargetDatabase: "tenant_42",
	}
	if report, err := p.Preflight(ctx, spec); err != nil || !report.OK() {
		log.Fatal(err, report.Err())
	}
	st, err := p.Start(ctx, spec)
	if err != nil {
		log.Fatal(err)
	}
	// The application keeps writing while the data is copied.
	if _, err := conn.Exec(ctx, `INSERT INTO notes (body) VALUES ('written during the copy')`); err != nil {
		log.Fatal(err)
	}

	// The cutover: fence the source (here: nobody writes any more), then
	// wait until the target has everything.
	pos, err := st.Barrier(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := st.WaitFor(ctx, pos); err != nil {
		log.Fatal(err)
	}
	if err := st.CheckSchema(ctx); err != nil {
		log.Fatal(err)
	}
	if err := st.SyncSequences(ctx); err != nil {
		log.Fatal(err)
	}
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		log.Fatal(err)
	}
	if err := st.Finish(ctx); err != nil {
		log.Fatal(err)
	}

	moved, err := dst.Connect(ctx, "tenant_42")
	if err != nil {
		log.Fatal(err)
	}
	defer moved.Close(ctx)
	var n int
	var next int
	if err := moved.QueryRow(ctx, `SELECT count(*), nextval('notes_id_seq') FROM notes`).Scan(&n, &next); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "notes on the new instance; next id", next)
	// Output: 1001 notes on the new instance; next id 1002
}

// Preflight lists every problem at once and changes nothing.
func ExampleProvider_Preflight() {
	ctx := context.Background()
	src, err := localpg.Start(ctx, &localpg.Config{Name: "old", Settings: map[string]string{"wal_level": "replica", "max_slot_wal_keep_size": "-1"}})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	if err := src.CreateDatabase(ctx, "tenant_7"); err != nil {
		log.Fatal(err)
	}
	conn, err := src.Connect(ctx, "tenant_7")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE audit (at timestamptz, what text)`); err != nil {
		log.Fatal(err)
	}
	var p logical.Provider
	report, err := p.Preflight(ctx, replica.Spec{
		ID:     "tenant-7",
		Source: src.ConnString("postgres"), SourceDatabase: "tenant_7",
		Target: src.ConnString("postgres"), TargetDatabase: "tenant_7_copy",
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, problem := range report.Problems {
		fmt.Println(problem.Check)
	}
	// Output:
	// wal_level
	// max_slot_wal_keep_size
	// replica identity
}
