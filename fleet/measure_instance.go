package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/internal/pgretry"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// FileCounting is how relation files are counted.
type FileCounting string

const (
	// FileCountingAuto lists the data directory where the Admin role may
	// (FileCountingDataDirectory), and counts per database where it may
	// not (FileCountingPerDatabase).
	FileCountingAuto FileCounting = ""
	// FileCountingDataDirectory lists each database's directory
	// (base/<oid>, and its directory in every tablespace) with pg_ls_dir,
	// every database in one query over the one Admin connection. The
	// role must be a superuser or have EXECUTE on
	// pg_ls_dir(text, boolean, boolean); otherwise the measure is refused
	// with ErrFileListingDenied. It counts what is on disk: the files of
	// a relation dropped since the last checkpoint too, until the
	// checkpoint removes them.
	FileCountingDataDirectory FileCounting = "data_directory"
	// FileCountingPerDatabase connects to each database that allows
	// connections, Concurrency at a time, and counts the files of its
	// relations from pg_class and pg_relation_size: one connection per
	// database. It cannot count a database that refuses connections
	// (Usage.FilesUncounted), and never connects to templates, which
	// would make CREATE DATABASE from them fail meanwhile.
	FileCountingPerDatabase FileCounting = "per_database"
)

// Validate refuses a FileCounting that is none of the above, naming
// them.
func (f FileCounting) Validate() error {
	switch f {
	case FileCountingAuto, FileCountingDataDirectory, FileCountingPerDatabase:
		return nil
	}
	return fmt.Errorf("%w: %q is not a FileCounting: use %q, %q or leave it empty",
		ErrInvalid, string(f), FileCountingDataDirectory, FileCountingPerDatabase)
}

// UsageConcurrencyDefault is how many databases are connected to at once
// when counting per database unless UsageOpts says otherwise.
const UsageConcurrencyDefault = 4

// ErrFileListingDenied: FileCountingDataDirectory was asked for, but the
// Admin role may not list the data directory.
var ErrFileListingDenied = errors.New("fleet: the Admin role may not list the data directory")

// Measurement is one instance measured.
type Measurement struct {
	// Databases on the instance (or those UsageOpts.Databases names that
	// are), templates included, sorted by name.
	Databases []Usage `json:"databases"`
	// Files is how files were counted: FileCountingDataDirectory or
	// FileCountingPerDatabase.
	Files FileCounting `json:"files"`
	// Connections is how many connections the measure opened: 1, plus
	// one per database connected to when counting per database.
	Connections int `json:"connections"`
}

// FilesUncountedError says that the files of the databases on inst could
// not be counted, wrapping ErrFileListingDenied, and what to do; nil when
// there are none. A limit on files cannot be checked without them.
func FilesUncountedError(inst Instance, databases []string) error {
	if len(databases) == 0 {
		return nil
	}
	return fmt.Errorf("%w (%s), and the files of %q cannot be counted otherwise: they refuse connections "+
		"(copies fenced by a move? Retire them); or GRANT EXECUTE ON FUNCTION pg_ls_dir(text, boolean, boolean) to the role",
		ErrFileListingDenied, inst, databases)
}

// Held is what an instance holds against its Limits.
type Held struct {
	// Databases, Files and Bytes sum the databases that count against
	// the Limits (Usage.CountsAgainstLimits).
	Databases, Files, Bytes int64
	// FilesUncounted names those of them whose files could not be
	// counted, so Files is short of what is on disk.
	FilesUncounted []string
}

// Held sums what counts against the instance's Limits.
func (m *Measurement) Held() Held {
	var h Held
	for _, u := range m.Databases {
		if !u.CountsAgainstLimits() {
			continue
		}
		h.Databases++
		h.Files += u.Files
		h.Bytes += u.Bytes
		if u.FilesUncounted {
			h.FilesUncounted = append(h.FilesUncounted, u.Database)
		}
	}
	return h
}

// MeasureInstance measures every database physically on inst through its
// Admin connection: the size of each, its relation files and its
// activity, with one connection and two queries where the role may list
// the data directory (see FileCounting), plus one connection per
// database where it may not, or where opts.Tables asks for table counts.
// Fenced copies awaiting Retire are measured like any database:
// pg_database_size and the data directory do not need to connect to
// them. Activity is sampled first, before the measure's own queries.
func MeasureInstance(ctx context.Context, inst Instance, opts *UsageOpts) (*Measurement, error) {
	return withAdmin(ctx, inst, opts, func(cfg *pgx.ConnConfig, admin *pgx.Conn, o *UsageOpts) (*Measurement, error) {
		return measure(ctx, inst, cfg, admin, o)
	})
}

// withAdmin checks opts, connects with inst's Admin connection string,
// and runs fn on the connection with the options' defaults applied.
func withAdmin[T any](ctx context.Context, inst Instance, opts *UsageOpts,
	fn func(cfg *pgx.ConnConfig, admin *pgx.Conn, o *UsageOpts) (T, error)) (T, error) {
	var zero T
	o, err := opts.withDefaults()
	if err != nil {
		return zero, err
	}
	cfg, err := pgx.ParseConfig(inst.Admin)
	if err != nil {
		// pgx's parse errors can quote the connection string.
		return zero, fmt.Errorf("%w: instance %q: Admin is not a valid connection string", ErrInvalid, inst.ID)
	}
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return zero, fmt.Errorf("fleet: usage of %s: %w", inst, err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	return fn(cfg, admin, &o)
}

// measure is MeasureInstance on an open Admin connection, with defaults
// applied.
func measure(ctx context.Context, inst Instance, cfg *pgx.ConnConfig, admin *pgx.Conn, o *UsageOpts) (*Measurement, error) {
	m := &Measurement{Files: o.Files, Connections: 1}
	if m.Files != FileCountingPerDatabase {
		var may bool
		if err := admin.QueryRow(ctx, `SELECT has_function_privilege('pg_catalog.pg_ls_dir(text, boolean, boolean)', 'EXECUTE')`).
			Scan(&may); err != nil {
			return nil, fmt.Errorf("fleet: usage of %s: %w", inst, err)
		}
		switch {
		case may:
			m.Files = FileCountingDataDirectory
		case m.Files == FileCountingDataDirectory:
			return nil, fmt.Errorf("%w: %s: make its Admin role a superuser or GRANT EXECUTE ON FUNCTION "+
				"pg_ls_dir(text, boolean, boolean) TO it, or count files per database", ErrFileListingDenied, inst)
		default:
			m.Files = FileCountingPerDatabase
		}
	}
	var names []string // nil: every database
	if len(o.Databases) > 0 {
		names = o.Databases
	}
	var before map[string]int64
	var t0 time.Time
	if o.Interval > 0 {
		var err error
		if before, err = sampleActivity(ctx, admin, names); err != nil {
			return nil, fmt.Errorf("fleet: usage of %s: sample activity: %w", inst, err)
		}
		t0 = time.Now()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(o.Interval):
		}
	}
	query := sizesQuery
	if m.Files == FileCountingDataDirectory {
		query = sizesAndFilesQuery
	}
	var xacts []int64
	// A database dropped while the query runs makes pg_database_size
	// fail for a role that is not a superuser; the next try does not
	// see it.
	err := pgretry.Retry(ctx, 10*time.Second, 10*time.Millisecond, isUndefinedDatabase, func() error {
		rows, err := admin.Query(ctx, query, names)
		if err != nil {
			return err
		}
		m.Databases, xacts = m.Databases[:0], xacts[:0]
		var u Usage
		var x int64
		_, err = pgx.ForEachRow(rows, []any{&u.Database, &u.Template, &u.AllowsConnections, &u.Bytes, &u.Files, &x}, func() error {
			m.Databases = append(m.Databases, u)
			xacts = append(xacts, x)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: usage of %s: %w", inst, err)
	}
	if o.Interval > 0 {
		secs := time.Since(t0).Seconds()
		for i := range m.Databases {
			if b, ok := before[m.Databases[i].Database]; ok {
				m.Databases[i].TPS = float64(max(xacts[i]-b, 0)) / secs
			}
		}
	}
	if m.Files == FileCountingPerDatabase || o.Tables {
		if err := countPerDatabase(ctx, inst, cfg, m, m.Files == FileCountingPerDatabase, o.Concurrency); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func isUndefinedDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "3D000"
}

// sampleActivity returns each database's transactions so far.
func sampleActivity(ctx context.Context, admin *pgx.Conn, names []string) (map[string]int64, error) {
	rows, err := admin.Query(ctx, `SELECT d.datname, coalesce(s.xact_commit + s.xact_rollback, 0)
		FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
		WHERE $1::text[] IS NULL OR d.datname = ANY($1)`, names)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { m[name] = n; return nil })
	return m, err
}

// sizesQuery is every database (or those named by $1) with its size and
// transactions so far; files are counted elsewhere (zero here).
const sizesQuery = `
SELECT d.datname, d.datistemplate, d.datallowconn,
	coalesce(pg_database_size(d.oid), 0), 0::bigint,
	coalesce(s.xact_commit + s.xact_rollback, 0)
FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
WHERE $1::text[] IS NULL OR d.datname = ANY($1)
ORDER BY d.datname`

// sizesAndFilesQuery is sizesQuery with each database's relation files
// counted in its directories: base/<oid>, and <oid> in the directory of
// this server version in every tablespace. A relation file's name begins
// with its relfilenode (then an optional fork suffix and segment number,
// as relpath() builds it); the directory's other files (PG_VERSION,
// pg_filenode.map, pg_internal.init, temporary relations
// "t<backend>_<relfilenode>") begin with a letter. Testing the first
// byte rather than matching the whole name halves the cost of listing
// (measured with 1,000 databases of 300 files).
const sizesAndFilesQuery = `
WITH dir AS (
	SELECT 'base' AS path
	UNION ALL
	SELECT 'pg_tblspc/' || t.oid || '/' || v
	FROM pg_tablespace t, pg_ls_dir('pg_tblspc/' || t.oid, true, false) v
	WHERE t.spcname NOT IN ('pg_default', 'pg_global')
	  AND v LIKE 'PG\_' || (current_setting('server_version_num')::int / 10000) || '\_%'
)
SELECT d.datname, d.datistemplate, d.datallowconn,
	coalesce(pg_database_size(d.oid), 0),
	(SELECT count(*) FROM dir, pg_ls_dir(dir.path || '/' || d.oid, true, false) f
	 WHERE ascii(f) BETWEEN ascii('0') AND ascii('9')),
	coalesce(s.xact_commit + s.xact_rollback, 0)
FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
WHERE $1::text[] IS NULL OR d.datname = ANY($1)
ORDER BY d.datname`
