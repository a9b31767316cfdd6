package cutover

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PgBouncerFence holds a tenant's traffic in PgBouncer: Hold issues PAUSE
// for the tenant's PgBouncer database, which returns once every server
// connection of it is idle (in transaction pooling, once running
// transactions end); clients then wait in PgBouncer instead of failing.
// Release issues RESUME. It is cooperative for clients that bypass
// PgBouncer; combine it with DatabaseFence for an authoritative fence.
//
// In session pooling, PAUSE waits for clients to disconnect: bound Hold
// with its context.
type PgBouncerFence struct {
	// Admin is a connection string to PgBouncer's admin console (database
	// "pgbouncer") as one of its admin_users. It is never printed.
	Admin string
	// Database names the tenant's database in PgBouncer's [databases].
	// Default nil: the tenant's database name.
	Database func(t FenceTarget) string
}

var _ Fence = PgBouncerFence{}

// Name implements Fence.
func (PgBouncerFence) Name() string { return "pgbouncer" }

func (f PgBouncerFence) database(t FenceTarget) string {
	if f.Database != nil {
		return f.Database(t)
	}
	return t.Tenant.Database
}

// Hold implements Fence.
func (f PgBouncerFence) Hold(ctx context.Context, t FenceTarget) error {
	return f.command(ctx, t, "PAUSE", true)
}

// Release implements Fence.
func (f PgBouncerFence) Release(ctx context.Context, t FenceTarget) error {
	return f.command(ctx, t, "RESUME", false)
}

// command runs PAUSE or RESUME unless the database is already in the
// wanted state, which PgBouncer would report as an error.
func (f PgBouncerFence) command(ctx context.Context, t FenceTarget, verb string, wantPaused bool) error {
	db := f.database(t)
	cfg, err := pgx.ParseConfig(f.Admin)
	if err != nil {
		return fmt.Errorf("cutover: pgbouncer fence: Admin is not a valid connection string")
	}
	// The admin console speaks only the simple query protocol.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cutover: pgbouncer fence: connect to the admin console: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	paused, err := pgBouncerPaused(ctx, conn, db)
	if err != nil {
		return fmt.Errorf("cutover: pgbouncer fence: %w", err)
	}
	if paused == wantPaused {
		return nil
	}
	// Admin console commands take no parameters; the name is quoted as
	// an identifier, which PgBouncer accepts.
	if _, err := conn.Exec(ctx, verb+" "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("cutover: pgbouncer fence: %s %q: %w", verb, db, err)
	}
	return nil
}

// pgBouncerPaused reads SHOW DATABASES, whose columns differ between
// PgBouncer versions, by column name.
func pgBouncerPaused(ctx context.Context, conn *pgx.Conn, db string) (bool, error) {
	rows, err := conn.Query(ctx, "SHOW DATABASES")
	if err != nil {
		return false, err
	}
	defer rows.Close()
	nameCol, pausedCol := -1, -1
	for i, fd := range rows.FieldDescriptions() {
		switch fd.Name {
		case "name":
			nameCol = i
		case "paused":
			pausedCol = i
		}
	}
	if nameCol < 0 || pausedCol < 0 {
		return false, fmt.Errorf("SHOW DATABASES has no name or paused column: is this PgBouncer's admin console?")
	}
	found, paused := false, false
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return false, err
		}
		if fmt.Sprint(vals[nameCol]) == db {
			found = true
			paused = fmt.Sprint(vals[pausedCol]) == "1"
		}
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	if !found {
		return false, fmt.Errorf("PgBouncer has no database %q: add it to [databases] or set PgBouncerFence.Database", db)
	}
	return paused, nil
}
