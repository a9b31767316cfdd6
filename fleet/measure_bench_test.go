package fleet_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/jackc/pgx/v5"
)

// benchTenants is how many tenant databases the measured instance holds.
const benchTenants = 1000

// BenchmarkMeasureInstance measures one instance holding benchTenants
// small tenant databases (three tables each, with their indexes and
// TOAST): listing the data directory through one connection, and the
// per-database count that is its fallback (and was the only way before),
// as the baseline. Connections are counted by the server (its
// log_connections lines). Run it with
//
//	go test ./fleet -run '^$' -bench MeasureInstance -benchtime 3x
func BenchmarkMeasureInstance(b *testing.B) {
	ctx := context.Background()
	inst := localpgtest.Start(b, &localpg.Config{Password: "pw", Settings: map[string]string{"log_connections": "on"}})
	start := time.Now()
	createTenants(b, inst, benchTenants)
	b.Logf("created %d tenant databases in %s", benchTenants, time.Since(start).Round(time.Millisecond))
	admin := fleet.Instance{ID: "pg", Admin: inst.ConnString("postgres")}

	type figure struct {
		perOp       time.Duration
		connections float64
	}
	figures := map[fleet.FileCounting]figure{}
	for _, files := range []fleet.FileCounting{fleet.FileCountingDataDirectory, fleet.FileCountingPerDatabase} {
		b.Run(string(files), func(b *testing.B) {
			var m *fleet.Measurement
			var err error
			before := strings.Count(inst.Log(), "connection authorized:")
			for b.Loop() {
				if m, err = fleet.MeasureInstance(ctx, admin, &fleet.UsageOpts{Interval: -1, Files: files}); err != nil {
					b.Fatal(err)
				}
			}
			opened := float64(strings.Count(inst.Log(), "connection authorized:")-before) / float64(b.N)
			if n := m.Held().Databases; n != benchTenants {
				b.Fatalf("measured %d tenant databases, want %d", n, benchTenants)
			}
			b.ReportMetric(opened, "connections/op")
			figures[files] = figure{b.Elapsed() / time.Duration(b.N), opened}
		})
	}
	dd, pd := figures[fleet.FileCountingDataDirectory], figures[fleet.FileCountingPerDatabase]
	if dd.perOp > 0 && pd.perOp > 0 {
		b.Logf("measure of an instance with %d tenant databases: data directory %s with %.0f connection(s); "+
			"per database (baseline) %s with %.0f connections: %.0fx faster",
			benchTenants, dd.perOp.Round(time.Millisecond), dd.connections,
			pd.perOp.Round(time.Millisecond), pd.connections, float64(pd.perOp)/float64(dd.perOp))
	}
}

// createTenants creates n tenant databases from a template holding three
// small tables, a few at a time. FILE_COPY copies the template's files
// instead of writing them to the WAL block by block.
func createTenants(b *testing.B, inst *localpg.Instance, n int) {
	b.Helper()
	ctx := context.Background()
	localpgtest.CreateDatabase(b, inst, "tenant_template")
	conn, err := inst.Connect(ctx, "tenant_template")
	if err != nil {
		b.Fatal(err)
	}
	_, err = conn.Exec(ctx, `CREATE TABLE users (id bigint PRIMARY KEY, name text);
		CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users, note text);
		CREATE INDEX ON orders (user_id);
		CREATE TABLE events (at timestamptz NOT NULL, payload jsonb);
		INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 100) g;
		INSERT INTO orders SELECT g, 1 + g % 100, repeat('n', 50) FROM generate_series(1, 500) g`)
	if err == nil {
		_, err = conn.Exec(ctx, "VACUUM")
	}
	conn.Close(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const concurrently = 4
	names := make(chan string)
	errs := make(chan error, concurrently)
	var wg sync.WaitGroup
	for range concurrently {
		wg.Go(func() {
			conn, err := inst.Connect(ctx, "postgres")
			if err != nil {
				errs <- err
				for range names {
				}
				return
			}
			defer conn.Close(ctx)
			failed := false
			for name := range names { // drained even after a failure, so the sender never blocks
				if failed {
					continue
				}
				if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
					" TEMPLATE tenant_template STRATEGY FILE_COPY"); err != nil {
					errs <- err
					failed = true
				}
			}
		})
	}
	for i := range n - 1 { // the template is a tenant too
		names <- fmt.Sprintf("tenant_%04d", i)
	}
	close(names)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
