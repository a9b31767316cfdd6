package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// perDatabaseQuery counts, inside one database, its relation files and
// its tables. Files are counted the way the server lays them out: a
// relation with storage always has its main fork file; the other forks
// exist when they have blocks, except an unlogged relation's init fork,
// which may be empty. Each fork takes one file per started segment.
// Shared catalogs live outside the database's directory, and temporary
// relations come and go with their sessions, so neither counts.
const perDatabaseQuery = `
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

// countPerDatabase connects to each measured database that allows
// connections, concurrency at a time, and counts its tables, and its
// files too when files is set (the others are then FilesUncounted). A
// database dropped since it was listed is left out of m; one fenced
// since is FilesUncounted. Any other failure fails the measure.
func countPerDatabase(ctx context.Context, inst Instance, admin *pgx.ConnConfig, m *Measurement, files bool, concurrency int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gone := make([]bool, len(m.Databases))
	errs := make([]error, len(m.Databases))
	var mu sync.Mutex // guards m.Connections
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := range m.Databases {
		u := &m.Databases[i]
		if files {
			u.Files = 0
		}
		if u.Template || !u.AllowsConnections {
			u.FilesUncounted = files
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			mu.Lock()
			m.Connections++
			mu.Unlock()
			var f, t int64
			err := countInDatabase(ctx, admin, u.Database, &f, &t)
			var pgErr *pgconn.PgError
			switch {
			case isUndefinedDatabase(err): // dropped
				gone[i] = true
			case errors.As(err, &pgErr) && pgErr.Code == "55000": // not accepting connections: fenced
				u.FilesUncounted = files
			case err != nil:
				errs[i] = fmt.Errorf("fleet: database %q on %s: %w", u.Database, inst, err)
				cancel()
			default:
				u.Tables = t
				if files {
					u.Files = f
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fleet: usage of %s: %w", inst, err)
	}
	kept := m.Databases[:0]
	for i, u := range m.Databases {
		if !gone[i] {
			kept = append(kept, u)
		}
	}
	m.Databases = kept
	return nil
}

func countInDatabase(ctx context.Context, admin *pgx.ConnConfig, database string, files, tables *int64) error {
	cfg := admin.Copy()
	cfg.Database = database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, perDatabaseQuery).Scan(files, tables)
}
