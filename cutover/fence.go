package cutover

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
)

// FenceTarget is what a fence guards: one tenant database on the instance
// it is moving from.
type FenceTarget struct {
	Tenant   fleet.Tenant
	Instance fleet.Instance
	// Spare lists backends of the source that a fence must leave alone:
	// the stream's own sessions, which read the source inside the window
	// and deliver its last changes (the logical stream reports them with
	// FencePIDs). Nil means the stream did not say; DatabaseFence then
	// leaves every replication session running.
	Spare []uint32
}

// Fence holds and releases writes to a tenant's source database. Both
// methods are idempotent: a move resumed after a crash may call them
// again.
type Fence interface {
	// Name identifies the fence in reports and the journal.
	Name() string
	// Hold returns once the fence is up. What that guarantees depends on
	// the fence: DatabaseFence is authoritative (no session can commit a
	// write to the source database), others are cooperative.
	Hold(ctx context.Context, t FenceTarget) error
	// Release takes the fence down, restoring what was there before.
	// Releasing a fence that is not held does nothing.
	Release(ctx context.Context, t FenceTarget) error
}

// SettleDefault is how long DatabaseFence waits after a round that found
// no session left before it checks once more (see DatabaseFence.Settle).
const SettleDefault = 25 * time.Millisecond

// DatabaseFence is the authoritative fence: Hold makes the source database
// refuse new connections (ALLOW_CONNECTIONS false, which binds superusers
// too), ends every session connected to it except the ones in
// FenceTarget.Spare, and returns once they are gone. After it returns, no
// session can commit a write to the database; uncommitted transactions of
// the ended sessions are rolled back, and their clients were never told
// they committed.
//
// Which sessions it ends: with FenceTarget.Spare set, every backend of the
// database but those (client sessions, replication sessions, background
// workers); without it, client sessions only, so a replication=database
// session that some client opened before the fence could still write.
//
// Release allows connections again. Preflight checks that the database
// allowed them before, so that is exactly the state Hold found.
//
// The admin role of the instance must own the database or be a superuser.
type DatabaseFence struct {
	// Settle: a backend that passed the connection check just before
	// the ALTER shows in pg_stat_activity only once its startup is done,
	// so Hold returns only after two rounds that found no session, Settle
	// apart. Default SettleDefault.
	Settle time.Duration
}

var _ Fence = DatabaseFence{}

// Name implements Fence.
func (DatabaseFence) Name() string { return "database" }

// Hold implements Fence.
func (f DatabaseFence) Hold(ctx context.Context, t FenceTarget) error {
	conn, err := connectAdmin(ctx, t.Instance, t.Tenant.Database)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	db := pgx.Identifier{t.Tenant.Database}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+db+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("cutover: database fence on %s: refuse connections to %s: %w", t.Instance.ID, db, err)
	}
	settle := f.Settle
	if settle <= 0 {
		settle = SettleDefault
	}
	spare := make([]int64, len(t.Spare))
	for i, pid := range t.Spare {
		spare[i] = int64(pid)
	}
	emptyRounds := 0
	for {
		var left int
		err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid))
			FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()
			  AND ($2::int8[] IS NULL AND backend_type = 'client backend'
			       OR $2::int8[] IS NOT NULL AND pid <> ALL($2::int8[]))`,
			t.Tenant.Database, nilIfEmpty(spare, t.Spare == nil)).Scan(&left)
		if err != nil {
			return fmt.Errorf("cutover: database fence on %s: end sessions of %s: %w", t.Instance.ID, db, err)
		}
		wait := 5 * time.Millisecond
		if left == 0 {
			if emptyRounds++; emptyRounds == 2 {
				return nil
			}
			wait = settle
		} else {
			emptyRounds = 0
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cutover: database fence on %s: %d session(s) of %s still ending: %w",
				t.Instance.ID, left, db, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// nilIfEmpty passes "no list" as SQL NULL.
func nilIfEmpty(pids []int64, none bool) any {
	if none {
		return nil
	}
	return pids
}

// Release implements Fence.
func (DatabaseFence) Release(ctx context.Context, t FenceTarget) error {
	conn, err := connectAdmin(ctx, t.Instance, t.Tenant.Database)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	db := pgx.Identifier{t.Tenant.Database}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+db+" WITH ALLOW_CONNECTIONS true"); err != nil {
		return fmt.Errorf("cutover: release database fence on %s: %w", t.Instance.ID, err)
	}
	return nil
}

// connectAdmin connects with the instance's admin connection string
// without letting a parse error quote it (it may hold a password). A
// database cannot refuse connections to the session changing it, so the
// admin session never sits in the tenant's database.
func connectAdmin(ctx context.Context, inst fleet.Instance, avoid string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(inst.Admin)
	if err != nil {
		return nil, fmt.Errorf("cutover: %s: Admin is not a valid connection string", inst)
	}
	if cfg.Database == avoid || cfg.Database == "" {
		cfg.Database = "postgres"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cutover: connect to %s: %w", inst, err)
	}
	return conn, nil
}
