package fleetjobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/pgschema"
)

// MigrateOpts configures Migrate; nil means defaults.
type MigrateOpts struct {
	// Schema holds River's tables; the host's river.Config.Schema must
	// name the same. Default empty: the first schema of the connection's
	// search_path, as River's own default.
	Schema string
	// Logger receives River's migration log. Default: discarded.
	Logger *slog.Logger
}

// River accepts schema names of this form only (river.Config.Schema).
var riverSchemaName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Migrate creates or upgrades River's tables in the control database pool
// connects to, with rivermigrate, each version in a transaction of its own
// under the advisory lock under which daisychain migrates its own control
// schema (fleet.SchemaDefault). River's migrator takes no lock: with this
// one, several worker processes may call Migrate at start-up at once, each
// version is applied exactly once, and never beside a migration of ours.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts *MigrateOpts) error {
	var o MigrateOpts
	if opts != nil {
		o = *opts
	}
	if pool == nil {
		return errors.New("fleetjobs: migrate: pool is nil: pass a pool to the control database")
	}
	if o.Schema != "" && !riverSchemaName.MatchString(o.Schema) {
		return fmt.Errorf("fleetjobs: migrate: MigrateOpts.Schema %q is not a name River accepts (letters, digits, _)", o.Schema)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: o.Schema, Logger: o.Logger})
	if err != nil {
		return fmt.Errorf("fleetjobs: migrate: %w", err)
	}
	// One transaction per version, as River's own Migrate does: a
	// version may use what the one before added (an enum value), which
	// PostgreSQL allows only once that is committed.
	for _, v := range migrator.AllVersions() {
		if err := migrateVersion(ctx, pool, migrator, o.Schema, v.Version); err != nil {
			return err
		}
	}
	return nil
}

// migrateVersion brings River's tables up to version, if they are not
// there yet, in one transaction under the migration lock.
func migrateVersion(ctx context.Context, pool *pgxpool.Pool, migrator *rivermigrate.Migrator[pgx.Tx], schema string, version int) (err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("fleetjobs: migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback(context.WithoutCancel(ctx)))
		}
	}()
	if err = pgschema.Lock(ctx, tx, fleet.SchemaDefault); err != nil {
		return fmt.Errorf("fleetjobs: migrate: %w", err)
	}
	if schema != "" {
		if _, err = tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("fleetjobs: migrate: create schema %s: %w", schema, err)
		}
	}
	if _, err = migrator.MigrateTx(ctx, tx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{TargetVersion: version}); err != nil {
		return fmt.Errorf("fleetjobs: migrate River's tables to version %d: %w", version, err)
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("fleetjobs: migrate River's tables to version %d: commit: %w", version, err)
	}
	return nil
}
