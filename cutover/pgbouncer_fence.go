package cutover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/internal/pgbadmin"
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
//
// After a move that switched, the fence stays held (the source copy stays
// fenced for the rollback period), and PgBouncer's entry still points at
// the source: run a flags/pgbouncer Follower beside PgBouncer, which
// points the entry at the target, RELOADs and RESUMEs once the route is
// published there. Hold works beside it: a database the Follower paused
// first is waited for until drained.
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

// HoldAll implements BatchFence. It reads SHOW DATABASES first and
// refuses, pausing nothing, when PgBouncer lacks any target's database;
// then it issues PAUSE for each database. The admin console takes one
// command at a time and each PAUSE returns once that database's server
// connections are idle, so HoldAll costs a round trip per database plus
// the longest transaction in flight: unlike DatabaseFence's, its cost
// grows with the targets. Inside a run it uses the console session the
// run opened, and checked, before its window; outside one it connects for
// the call.
//
// A database someone else paused first (a flags/pgbouncer Follower that
// follows the paused route, an operator) is not drained yet when it shows
// as paused: HoldAll PAUSEs it too (PgBouncer 1.18 then waits for the
// drain; versions that answer "already suspended/paused" do not), and
// returns only once SHOW POOLS counts no active server connection in any
// pool of the targets' databases, bounded by ctx.
func (f PgBouncerFence) HoldAll(ctx context.Context, targets []FenceTarget) error {
	if len(targets) == 0 {
		return nil
	}
	return targets[0].admin.doConsole(ctx, f.Admin, func(conn *pgx.Conn) error {
		dbs, _, err := f.states(ctx, conn, targets)
		if err != nil {
			return err
		}
		for _, db := range dbs {
			if err := pgbadmin.Command(ctx, conn, "PAUSE", db, "already"); err != nil {
				return fmt.Errorf("cutover: pgbouncer fence: %w", err)
			}
		}
		if err := waitDrained(ctx, conn, dbs); err != nil {
			return fmt.Errorf("cutover: pgbouncer fence: %w", err)
		}
		return nil
	})
}

// ReleaseAll implements BatchFence: RESUME for each database that is
// paused, after the same check. A database resumed meanwhile by someone
// else (PgBouncer answers "not paused") is no error.
func (f PgBouncerFence) ReleaseAll(ctx context.Context, targets []FenceTarget) error {
	if len(targets) == 0 {
		return nil
	}
	return targets[0].admin.doConsole(ctx, f.Admin, func(conn *pgx.Conn) error {
		dbs, paused, err := f.states(ctx, conn, targets)
		if err != nil {
			return err
		}
		for _, db := range dbs {
			if !paused[db] {
				continue
			}
			if err := pgbadmin.Command(ctx, conn, "RESUME", db, "not paused"); err != nil {
				return fmt.Errorf("cutover: pgbouncer fence: %w", err)
			}
		}
		return nil
	})
}

// drainPoll is how often waitDrained reads SHOW POOLS.
const drainPoll = 5 * time.Millisecond

// waitDrained returns once SHOW POOLS counts no active server connection
// (sv_active) in any pool of dbs: every transaction (in session pooling,
// every session) that held one has ended. Bounded by ctx.
func waitDrained(ctx context.Context, conn *pgx.Conn, dbs []string) error {
	want := make(map[string]bool, len(dbs))
	for _, db := range dbs {
		want[db] = true
	}
	active := 0
	err := backoff.Retry(func() error {
		var err error
		if active, err = serversActive(ctx, conn, want); err != nil {
			return backoff.Permanent(err)
		}
		if active > 0 {
			return errNotDrained
		}
		return nil
	}, backoff.WithContext(backoff.NewConstantBackOff(drainPoll), ctx))
	if errors.Is(err, errNotDrained) || ctx.Err() != nil {
		return fmt.Errorf("%d server connection(s) still active after PAUSE: %w", active, cmp.Or(ctx.Err(), err))
	}
	return err
}

var errNotDrained = errors.New("not drained")

// serversActive sums sv_active of SHOW POOLS over the pools of dbs.
func serversActive(ctx context.Context, conn *pgx.Conn, dbs map[string]bool) (int, error) {
	active := 0
	err := pgbadmin.Show(ctx, conn, "SHOW POOLS", []string{"database", "sv_active"}, func(v []string) {
		if dbs[v[0]] {
			n, _ := strconv.Atoi(v[1])
			active += n
		}
	})
	return active, err
}

// prepare opens the run's session to the admin console and checks that
// PgBouncer has every target's database, before the window opens: inside
// it, HoldAll then neither connects nor authenticates.
func (f PgBouncerFence) prepare(ctx context.Context, targets []FenceTarget) error {
	if len(targets) == 0 {
		return nil
	}
	if err := targets[0].admin.openConsole(ctx, f.Admin); err != nil {
		return err
	}
	return targets[0].admin.doConsole(ctx, f.Admin, func(conn *pgx.Conn) error {
		_, _, err := f.states(ctx, conn, targets)
		return err
	})
}

// states returns the targets' PgBouncer databases, each once, and
// whether each is paused; a database PgBouncer lacks is an error naming
// every such one.
func (f PgBouncerFence) states(ctx context.Context, conn *pgx.Conn, targets []FenceTarget) ([]string, map[string]bool, error) {
	paused, err := pgBouncerPaused(ctx, conn)
	if err != nil {
		return nil, nil, fmt.Errorf("cutover: pgbouncer fence: %w", err)
	}
	var dbs, missing []string
	seen := map[string]bool{}
	for _, t := range targets {
		db := f.database(t)
		if seen[db] {
			continue
		}
		seen[db] = true
		if _, found := paused[db]; !found {
			missing = append(missing, strconv.Quote(db))
			continue
		}
		dbs = append(dbs, db)
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("cutover: pgbouncer fence: PgBouncer has no database %s: add them to [databases] or set PgBouncerFence.Database",
			joinFirst(missing, 5))
	}
	return dbs, paused, nil
}

// connectConsole connects to a PgBouncer admin console.
func connectConsole(ctx context.Context, admin string) (*pgx.Conn, error) {
	conn, err := pgbadmin.Connect(ctx, admin)
	if errors.Is(err, pgbadmin.ErrConnString) {
		return nil, errors.New("cutover: pgbouncer fence: Admin is not a valid connection string")
	}
	if err != nil {
		return nil, fmt.Errorf("cutover: pgbouncer fence: %w", err)
	}
	return conn, nil
}

// pgBouncerPaused reads SHOW DATABASES: whether each database is paused.
func pgBouncerPaused(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	paused := map[string]bool{}
	err := pgbadmin.Show(ctx, conn, "SHOW DATABASES", []string{"name", "paused"}, func(v []string) {
		paused[v[0]] = v[1] == "1"
	})
	return paused, err
}
