package fleet

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// UsageIntervalDefault is how long MeasureUsage samples activity unless
// UsageOpts says otherwise. PostgreSQL publishes a backend's transaction
// counts about once a second, so shorter intervals are noisy.
const UsageIntervalDefault = 5 * time.Second

// Usage is what one tenant database holds and how busy it is.
type Usage struct {
	// Database is the database's name.
	Database string `json:"database"`
	// Bytes is the database's size on disk (pg_database_size).
	Bytes int64 `json:"bytes"`
	// Files is the number of relation files on disk: every fork (main,
	// free space map, visibility map, init) of every relation with
	// storage, counting each 1 GB segment (segment_size) as a file.
	Files int64 `json:"files"`
	// Tables is the number of ordinary and partitioned tables outside
	// the system schemas.
	Tables int64 `json:"tables"`
	// TPS is committed plus rolled-back transactions per second over the
	// sampling interval; zero when activity was not sampled.
	TPS float64 `json:"tps"`
}

// DiscoverOpts are optional arguments of DiscoverDatabases; nil means
// none.
type DiscoverOpts struct {
	// Exclude names databases that are not tenants, such as the control
	// database when it shares the instance.
	Exclude []string
	// Filter, if set, keeps only databases for which it returns true.
	Filter func(database string) bool
}

// Querier is what the measuring functions need of a connection:
// *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DiscoverDatabases lists the tenant databases of the instance db is
// connected to: every database that accepts connections except templates,
// "postgres" and opts.Exclude, sorted by name.
func DiscoverDatabases(ctx context.Context, db Querier, opts *DiscoverOpts) ([]string, error) {
	var o DiscoverOpts
	if opts != nil {
		o = *opts
	}
	rows, err := db.Query(ctx, `SELECT datname FROM pg_database
		WHERE NOT datistemplate AND datallowconn AND datname <> 'postgres'
		AND datname <> ALL(coalesce($1::text[], '{}')) ORDER BY datname`, o.Exclude)
	if err != nil {
		return nil, fmt.Errorf("fleet: discover databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("fleet: discover databases: %w", err)
	}
	if o.Filter != nil {
		names = slices.DeleteFunc(names, func(n string) bool { return !o.Filter(n) })
	}
	return names, nil
}

// UsageOpts are optional arguments of MeasureUsage; nil means defaults.
type UsageOpts struct {
	// Databases to measure. Default: DiscoverDatabases with Discover.
	Databases []string
	// Discover is passed to DiscoverDatabases when Databases is empty.
	Discover *DiscoverOpts
	// Interval over which activity is sampled. Default
	// UsageIntervalDefault; negative skips sampling (TPS is zero).
	Interval time.Duration
}

// MeasureUsage measures the tenant databases of inst, connecting with its
// Admin connection string to each database in turn. Activity is sampled
// first, before the measuring connections add transactions of their own.
func MeasureUsage(ctx context.Context, inst Instance, opts *UsageOpts) ([]Usage, error) {
	var o UsageOpts
	if opts != nil {
		o = *opts
	}
	if o.Interval == 0 {
		o.Interval = UsageIntervalDefault
	}
	cfg, err := pgx.ParseConfig(inst.Admin)
	if err != nil {
		// pgx's parse errors can quote the connection string.
		return nil, fmt.Errorf("%w: instance %q: Admin is not a valid connection string", ErrInvalid, inst.ID)
	}
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("fleet: usage of %s: %w", inst, err)
	}
	defer admin.Close(context.WithoutCancel(ctx))

	dbs := o.Databases
	if len(dbs) == 0 {
		if dbs, err = DiscoverDatabases(ctx, admin, o.Discover); err != nil {
			return nil, err
		}
	}
	out := make([]Usage, len(dbs))
	for i, db := range dbs {
		out[i].Database = db
	}
	if o.Interval > 0 {
		if err := sampleActivity(ctx, admin, out, o.Interval); err != nil {
			return nil, fmt.Errorf("fleet: usage of %s: %w", inst, err)
		}
	}
	for i := range out {
		if err := admin.QueryRow(ctx, "SELECT pg_database_size($1)", out[i].Database).Scan(&out[i].Bytes); err != nil {
			return nil, fmt.Errorf("fleet: size of database %q on %s: %w", out[i].Database, inst, err)
		}
		if err := measureFiles(ctx, cfg, &out[i]); err != nil {
			return nil, fmt.Errorf("fleet: files of database %q on %s: %w", out[i].Database, inst, err)
		}
	}
	return out, nil
}

func sampleActivity(ctx context.Context, admin *pgx.Conn, out []Usage, interval time.Duration) error {
	names := make([]string, len(out))
	for i := range out {
		names[i] = out[i].Database
	}
	sample := func() (map[string]int64, time.Time, error) {
		rows, err := admin.Query(ctx, `SELECT datname, xact_commit + xact_rollback
			FROM pg_stat_database WHERE datname = ANY($1::text[])`, names)
		if err != nil {
			return nil, time.Time{}, err
		}
		m := map[string]int64{}
		var name string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { m[name] = n; return nil })
		return m, time.Now(), err
	}
	before, t0, err := sample()
	if err != nil {
		return fmt.Errorf("sample activity: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(interval):
	}
	after, t1, err := sample()
	if err != nil {
		return fmt.Errorf("sample activity: %w", err)
	}
	secs := t1.Sub(t0).Seconds()
	for i := range out {
		d := after[out[i].Database] - before[out[i].Database]
		out[i].TPS = float64(max(d, 0)) / secs
	}
	return nil
}

// filesQuery counts relation files the way the server lays them out: a
// relation with storage always has its main fork file; the other forks
// exist when they have blocks, except an unlogged relation's init fork,
// which may be empty. Each fork takes one file per started segment.
// Shared catalogs live outside the database's directory, and temporary
// relations come and go with their sessions, so neither counts.
const filesQuery = `
WITH seg AS (SELECT pg_size_bytes(current_setting('segment_size'))::numeric AS b)
SELECT
	(SELECT coalesce(sum(
		greatest(1, ceil(pg_relation_size(c.oid, 'main') / seg.b)) +
		ceil(pg_relation_size(c.oid, 'fsm') / seg.b) +
		ceil(pg_relation_size(c.oid, 'vm') / seg.b) +
		CASE WHEN c.relpersistence = 'u'
			THEN greatest(1, ceil(pg_relation_size(c.oid, 'init') / seg.b)) ELSE 0 END
	), 0)::bigint
	FROM pg_class c, seg
	WHERE NOT c.relisshared AND c.relpersistence <> 't'
	  AND pg_relation_filenode(c.oid) IS NOT NULL),
	(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
	  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
	  AND n.nspname NOT LIKE 'pg\_toast%')`

func measureFiles(ctx context.Context, admin *pgx.ConnConfig, u *Usage) error {
	cfg := admin.Copy()
	cfg.Database = u.Database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, filesQuery).Scan(&u.Files, &u.Tables)
}
