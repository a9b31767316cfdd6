package cutover

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
)

// Shape is what a tenant move's time depends on, read on the source: how
// much there is to copy and index, and how fast it changes. A DryRun
// estimates from it; a move journals it with what it measured.
type Shape struct {
	// Bytes is the database's size (pg_database_size).
	Bytes int64 `json:"bytes"`
	// Tables and TableBytes: the ordinary tables and materialized views
	// outside the system schemas, with their TOAST.
	Tables     int   `json:"tables"`
	TableBytes int64 `json:"table_bytes"`
	// Indexes and IndexBytes: their indexes (TOAST's left out).
	Indexes    int   `json:"indexes"`
	IndexBytes int64 `json:"index_bytes"`
	// ChangesPerSecond is rows inserted, updated and deleted per second
	// in the database, from pg_stat_database over a short interval (0
	// when not sampled).
	ChangesPerSecond float64 `json:"changes_per_second"`
}

// shapeReading is Shape plus the changes counter, for a rate between
// two readings.
type shapeReading struct {
	Shape
	changes int64
	at      time.Time
}

// shapeSampleDefault is how long DryRun samples a tenant's write rate.
const shapeSampleDefault = time.Second

// readShape reads a tenant database's shape over one connection to it;
// sample > 0 reads its changes counter again after that long, for
// ChangesPerSecond.
func readShape(ctx context.Context, src fleet.Instance, database string, sample time.Duration) (shapeReading, error) {
	cfg, err := pgx.ParseConfig(src.Admin)
	if err != nil {
		return shapeReading{}, fmt.Errorf("cutover: %s: Admin is not a valid connection string", src)
	}
	cfg.Database = database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return shapeReading{}, fmt.Errorf("cutover: connect to database %q on %s: %w", database, src, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var s shapeReading
	err = conn.QueryRow(ctx, `SELECT pg_database_size(current_database()),
			count(*) FILTER (WHERE c.relkind IN ('r', 'm')),
			coalesce(sum(pg_table_size(c.oid)) FILTER (WHERE c.relkind IN ('r', 'm')), 0)::int8,
			count(*) FILTER (WHERE c.relkind = 'i'),
			coalesce(sum(pg_relation_size(c.oid)) FILTER (WHERE c.relkind = 'i'), 0)::int8
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND n.nspname NOT LIKE 'pg\_toast%'`).Scan(&s.Bytes, &s.Tables, &s.TableBytes, &s.Indexes, &s.IndexBytes)
	if err != nil {
		return shapeReading{}, fmt.Errorf("cutover: read the shape of database %q on %s: %w", database, src, err)
	}
	if s.changes, s.at, err = readChanges(ctx, conn, database); err != nil {
		return shapeReading{}, fmt.Errorf("cutover: read the activity of database %q on %s: %w", database, src, err)
	}
	if sample > 0 {
		select {
		case <-ctx.Done():
			return shapeReading{}, ctx.Err()
		case <-time.After(sample):
		}
		later, at, err := readChanges(ctx, conn, database)
		if err != nil {
			return shapeReading{}, fmt.Errorf("cutover: read the activity of database %q on %s: %w", database, src, err)
		}
		s.ChangesPerSecond = changesPerSecond(s.changes, s.at, later, at)
	}
	return s, nil
}

// readChanges reads a database's changes counter, from any database of
// its instance: pg_stat_database has a row for each. Backends report to
// it about once a second, so a rate wants readings a second or more
// apart.
func readChanges(ctx context.Context, conn *pgx.Conn, database string) (int64, time.Time, error) {
	var n int64
	err := conn.QueryRow(ctx, `SELECT coalesce(tup_inserted + tup_updated + tup_deleted, 0)
		FROM pg_stat_database WHERE datname = $1`, database).Scan(&n)
	return n, time.Now(), err
}

func changesPerSecond(before int64, from time.Time, after int64, to time.Time) float64 {
	d := to.Sub(from).Seconds()
	if d <= 0 || after < before {
		return 0
	}
	return float64(after-before) / d
}
