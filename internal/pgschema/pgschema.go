package pgschema

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Execer is what Migrate needs of a connection: *pgx.Conn, *pgxpool.Pool
// and pgx.Tx all satisfy it.
type Execer interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Migrate brings component's tables in schema up to date by running the
// migrations in steps that have not run yet, in order, in one transaction.
// A step is SQL in which every "{{schema}}" is replaced by the quoted
// schema name. Steps must never be edited or reordered once released; add
// new ones at the end.
func Migrate(ctx context.Context, db Execer, schema, component string, steps []string) (err error) {
	if schema == "" {
		return errors.New("pgschema: empty schema name")
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgschema: %s: begin: %w", component, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback(context.WithoutCancel(ctx)))
		}
	}()
	// Serialize migrations of this schema across processes. The lock
	// is taken before CREATE SCHEMA, whose IF NOT EXISTS is not safe
	// against a concurrent creator.
	if err = Lock(ctx, tx, schema); err != nil {
		return fmt.Errorf("pgschema: %s: %w", component, err)
	}
	q := pgx.Identifier{schema}.Sanitize()
	if _, err = tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+q); err != nil {
		return fmt.Errorf("pgschema: create schema %s: %w", q, err)
	}
	if _, err = tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+q+`.schema_version (
		component text PRIMARY KEY,
		version   integer NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("pgschema: create %s.schema_version: %w", q, err)
	}
	var version int
	err = tx.QueryRow(ctx, "SELECT version FROM "+q+".schema_version WHERE component = $1",
		component).Scan(&version)
	if errors.Is(err, pgx.ErrNoRows) {
		version, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("pgschema: %s: read version: %w", component, err)
	}
	if version > len(steps) {
		return fmt.Errorf("pgschema: %s in schema %s is at version %d, newer than this library's %d: upgrade daisychain",
			component, q, version, len(steps))
	}
	for v := version; v < len(steps); v++ {
		if _, err = tx.Exec(ctx, expand(steps[v], q)); err != nil {
			return fmt.Errorf("pgschema: %s: migration %d: %w", component, v+1, err)
		}
	}
	if version < len(steps) {
		if _, err = tx.Exec(ctx, "INSERT INTO "+q+`.schema_version (component, version) VALUES ($1, $2)
			ON CONFLICT (component) DO UPDATE SET version = excluded.version, updated_at = now()`,
			component, len(steps)); err != nil {
			return fmt.Errorf("pgschema: %s: record version: %w", component, err)
		}
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgschema: %s: commit: %w", component, err)
	}
	return nil
}

// Lock takes, for the rest of tx, the advisory lock under which Migrate
// changes schema: a migration of tables that are not ours (River's) takes
// it too, so it never runs beside another process's migration.
func Lock(ctx context.Context, tx pgx.Tx, schema string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
		"daisychain.pgschema:"+schema); err != nil {
		return fmt.Errorf("migration lock of schema %q: %w", schema, err)
	}
	return nil
}

func expand(step, quotedSchema string) string {
	return strings.ReplaceAll(step, "{{schema}}", quotedSchema)
}
