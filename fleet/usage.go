package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// UsageIntervalDefault is how long MeasureUsage samples activity unless
// UsageOpts says otherwise. PostgreSQL publishes a backend's transaction
// counts about once a second, so shorter intervals are noisy.
const UsageIntervalDefault = 5 * time.Second

// ErrDatabaseNotFound: a database asked for by name is not on the
// instance.
var ErrDatabaseNotFound = errors.New("fleet: database not found")

// Usage is what one database holds and how busy it is.
type Usage struct {
	// Database is the database's name.
	Database string `json:"database"`
	// Bytes is the database's size on disk (pg_database_size).
	Bytes int64 `json:"bytes"`
	// Files is the number of relation files on disk: every fork (main,
	// free space map, visibility map, init) of every relation with
	// storage, counting each 1 GB segment (segment_size) as a file.
	// Temporary relations and shared catalogs are not counted.
	Files int64 `json:"files"`
	// FilesUncounted: Files could not be counted and is zero. Only the
	// per-database count (FileCountingPerDatabase) leaves a database
	// uncounted: one that refuses connections, such as a copy fenced by
	// a move and awaiting Retire, or a template.
	FilesUncounted bool `json:"files_uncounted,omitempty"`
	// Tables is the number of ordinary and partitioned tables outside
	// the system schemas. It is counted only when UsageOpts.Tables is
	// set (it takes a connection to each database) and is zero
	// otherwise.
	Tables int64 `json:"tables"`
	// TPS is committed plus rolled-back transactions per second over the
	// sampling interval; zero when activity was not sampled.
	TPS float64 `json:"tps"`
	// Template is pg_database.datistemplate.
	Template bool `json:"template,omitempty"`
	// AllowsConnections is pg_database.datallowconn: false for a
	// database fenced by a move, whose copy stays on disk until Retire.
	AllowsConnections bool `json:"allows_connections"`
}

// CountsAgainstLimits reports whether the database counts against its
// instance's Limits: every database does, fenced copies and databases no
// catalog knows included, except the templates and the maintenance
// database "postgres" that every instance has and no tenant put there.
func (u Usage) CountsAgainstLimits() bool { return !u.Template && u.Database != "postgres" }

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

// UsageOpts are optional arguments of MeasureUsage and MeasureInstance;
// nil means defaults.
type UsageOpts struct {
	// Databases to measure. Default: MeasureUsage measures
	// DiscoverDatabases with Discover, MeasureInstance every database.
	Databases []string
	// Discover is passed to DiscoverDatabases when MeasureUsage is given
	// no Databases. MeasureInstance ignores it.
	Discover *DiscoverOpts
	// Interval over which activity is sampled. Default
	// UsageIntervalDefault; negative skips sampling (TPS is zero).
	Interval time.Duration
	// Files is how relation files are counted. Default
	// FileCountingAuto.
	Files FileCounting
	// Tables counts each database's tables (Usage.Tables), which takes a
	// connection to each database that allows connections. Default
	// false: no catalog view outside a database holds its tables, and
	// nothing in daisychain plans by them.
	Tables bool
	// Concurrency is how many databases are connected to at once when
	// counting per database (files on the fallback, or Tables). Default
	// UsageConcurrencyDefault.
	Concurrency int
}

func (o *UsageOpts) withDefaults() (UsageOpts, error) {
	var c UsageOpts
	if o != nil {
		c = *o
	}
	if c.Interval == 0 {
		c.Interval = UsageIntervalDefault
	}
	if c.Concurrency < 0 {
		return c, fmt.Errorf("%w: UsageOpts.Concurrency %d is negative; zero means UsageConcurrencyDefault", ErrInvalid, c.Concurrency)
	}
	if c.Concurrency == 0 {
		c.Concurrency = UsageConcurrencyDefault
	}
	if err := c.Files.Validate(); err != nil {
		return c, fmt.Errorf("UsageOpts.Files: %w", err)
	}
	return c, nil
}

// MeasureUsage measures the tenant databases of inst (opts.Databases, or
// those DiscoverDatabases finds) and returns their usage in that order.
// It is MeasureInstance restricted to those databases: one connection
// where the Admin role may list the data directory. A database asked for
// by name that is not on the instance is ErrDatabaseNotFound.
func MeasureUsage(ctx context.Context, inst Instance, opts *UsageOpts) ([]Usage, error) {
	return withAdmin(ctx, inst, opts, func(cfg *pgx.ConnConfig, admin *pgx.Conn, o *UsageOpts) ([]Usage, error) {
		if len(o.Databases) == 0 {
			var err error
			if o.Databases, err = DiscoverDatabases(ctx, admin, o.Discover); err != nil {
				return nil, err
			}
			if len(o.Databases) == 0 {
				return []Usage{}, nil
			}
		}
		m, err := measure(ctx, inst, cfg, admin, o)
		if err != nil {
			return nil, err
		}
		byName := make(map[string]Usage, len(m.Databases))
		for _, u := range m.Databases {
			byName[u.Database] = u
		}
		out := make([]Usage, len(o.Databases))
		for i, db := range o.Databases {
			u, ok := byName[db]
			if !ok {
				return nil, fmt.Errorf("%w: database %q is not on %s", ErrDatabaseNotFound, db, inst)
			}
			out[i] = u
		}
		return out, nil
	})
}
