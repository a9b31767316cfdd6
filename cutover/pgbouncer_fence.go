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

var _ BatchFence = PgBouncerFence{}

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
	return f.HoldAll(ctx, []FenceTarget{t})
}

// Release implements Fence.
func (f PgBouncerFence) Release(ctx context.Context, t FenceTarget) error {
	return f.ReleaseAll(ctx, []FenceTarget{t})
}

// HoldAll implements BatchFence: PAUSE for each target's database, over
// one connection to the admin console.
func (f PgBouncerFence) HoldAll(ctx context.Context, targets []FenceTarget) error {
	return f.command(ctx, targets, "PAUSE", true)
}

// ReleaseAll implements BatchFence: RESUME for each.
func (f PgBouncerFence) ReleaseAll(ctx context.Context, targets []FenceTarget) error {
	return f.command(ctx, targets, "RESUME", false)
}

// command runs PAUSE or RESUME for each target's database unless it is
// already in the wanted state, which PgBouncer would report as an error.
func (f PgBouncerFence) command(ctx context.Context, targets []FenceTarget, verb string, wantPaused bool) error {
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
	paused, err := pgBouncerPaused(ctx, conn)
	if err != nil {
		return fmt.Errorf("cutover: pgbouncer fence: %w", err)
	}
	for _, t := range targets {
		db := f.database(t)
		state, found := paused[db]
		if !found {
			return fmt.Errorf("cutover: pgbouncer fence: PgBouncer has no database %q: add it to [databases] or set PgBouncerFence.Database", db)
		}
		if state == wantPaused {
			continue
		}
		// Admin console commands take no parameters; the name is quoted
		// as an identifier, which PgBouncer accepts.
		if _, err := conn.Exec(ctx, verb+" "+pgx.Identifier{db}.Sanitize()); err != nil {
			return fmt.Errorf("cutover: pgbouncer fence: %s %q: %w", verb, db, err)
		}
		paused[db] = wantPaused
	}
	return nil
}

// pgBouncerPaused reads SHOW DATABASES, whose columns differ between
// PgBouncer versions, by column name: whether each database is paused.
func pgBouncerPaused(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	rows, err := conn.Query(ctx, "SHOW DATABASES")
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("SHOW DATABASES has no name or paused column: is this PgBouncer's admin console?")
	}
	paused := map[string]bool{}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		paused[fmt.Sprint(vals[nameCol])] = fmt.Sprint(vals[pausedCol]) == "1"
	}
	return paused, rows.Err()
}
