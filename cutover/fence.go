package cutover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
)

// FenceTarget is what a fence guards: one tenant database on the instance
// it is moving from.
type FenceTarget struct {
	Tenant   fleet.Tenant
	Instance fleet.Instance
	// Spare names the backends of the source that a fence must leave
	// alone: the copy's own sessions, which read the source inside the
	// window and deliver its last changes. A run sets it to the stream
	// when the stream is a FenceSparer, and to SparePIDs{} for a
	// conversion (a physical replica holds no session in the
	// databases). The PIDs change when the stream reconnects, so a fence
	// asks again before each round of ending sessions. Nil means nobody
	// said; DatabaseFence then leaves every replication session running.
	Spare FenceSparer

	// admin is the run's admin session to Instance, held from before
	// the window; nil outside a run.
	admin *adminSessions
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

// BatchFence is the optional capability of a Fence to hold and release
// many targets in one call: a conversion fences every tenant database of
// an instance inside one window. Both methods are idempotent, like Hold
// and Release; HoldAll returns once every target is held. A Fence without
// it is held target by target, several at a time. DatabaseFence has it at
// a cost that does not grow with the targets; PgBouncerFence over one
// console session, one PAUSE per database.
type BatchFence interface {
	Fence
	HoldAll(ctx context.Context, targets []FenceTarget) error
	ReleaseAll(ctx context.Context, targets []FenceTarget) error
}

// SettleDefault is how long DatabaseFence waits after a round that found
// no session left before it checks once more (see DatabaseFence.Settle).
const SettleDefault = time.Millisecond

// DatabaseFence is the authoritative fence: Hold makes the source database
// refuse new connections (ALLOW_CONNECTIONS false, which binds superusers
// too), ends every session connected to it except the ones in
// FenceTarget.Spare, and returns once they are gone. After it returns, no
// session can commit a write to the database; uncommitted transactions of
// the ended sessions are rolled back, and their clients were never told
// they committed.
//
// Which sessions it ends: with FenceTarget.Spare set, every backend of the
// database but those it names, asked again before each round (client
// sessions, replication sessions, background workers); without it, client
// sessions only, so a replication=database session that some client
// opened before the fence could still write.
//
// A session that passed the database's connection check just before it
// refused connections may take a while to show in pg_stat_activity (it
// shows once its startup is done, which a loaded server can make long);
// meanwhile it holds its startup lock on the database, which pg_locks
// shows. Hold ends those too, and returns once two rounds, Settle apart,
// find neither kind: a session that passes the check after the ALTER
// commits is refused by it.
//
// Release allows connections again. Preflight checks that the database
// allowed them before, so that is exactly the state Hold found.
//
// HoldAll fences many databases in the time of one: per instance, one
// statement refuses connections to all of them, and each round ends the
// sessions of all of them. Inside a run, it uses the admin session the
// run holds.
//
// The admin role of the instance must own the databases or be a
// superuser.
type DatabaseFence struct {
	// Settle separates the two rounds that must find no session for Hold
	// to return: a session between its startup lock and pg_stat_activity
	// when the first round read them is in pg_stat_activity by the second.
	// Default SettleDefault.
	Settle time.Duration
}

var _ BatchFence = DatabaseFence{}

// Name implements Fence.
func (DatabaseFence) Name() string { return "database" }

// Hold implements Fence.
func (f DatabaseFence) Hold(ctx context.Context, t FenceTarget) error {
	return f.HoldAll(ctx, []FenceTarget{t})
}

// Release implements Fence.
func (f DatabaseFence) Release(ctx context.Context, t FenceTarget) error {
	return f.ReleaseAll(ctx, []FenceTarget{t})
}

// HoldAll implements BatchFence.
func (f DatabaseFence) HoldAll(ctx context.Context, targets []FenceTarget) error {
	for _, set := range byInstance(targets) {
		if err := f.hold(ctx, set); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseAll implements BatchFence.
func (f DatabaseFence) ReleaseAll(ctx context.Context, targets []FenceTarget) error {
	var errs []error
	for _, set := range byInstance(targets) {
		inst, dbs := set[0].Instance, databasesOf(set)
		err := set[0].admin.do(ctx, inst, dbs, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, allowConnections(dbs, true))
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("cutover: release database fence of %d database(s) on %s: %w", len(dbs), inst.ID, err))
		}
	}
	return errors.Join(errs...)
}

// hold fences the databases of targets on one instance.
func (f DatabaseFence) hold(ctx context.Context, targets []FenceTarget) error {
	inst, dbs := targets[0].Instance, databasesOf(targets)
	settle := f.Settle
	if settle <= 0 {
		settle = SettleDefault
	}
	// Every backend but the spared ones goes in the databases whose
	// target names what to spare; client sessions only in the others.
	strict := []string{}
	for _, t := range targets {
		if t.Spare != nil {
			strict = append(strict, t.Tenant.Database)
		}
	}
	return targets[0].admin.do(ctx, inst, dbs, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, allowConnections(dbs, false)); err != nil {
			return fmt.Errorf("cutover: database fence on %s: refuse connections to %d database(s): %w", inst.ID, len(dbs), err)
		}
		emptyRounds := 0
		for {
			spare, err := sparedPIDs(ctx, targets)
			if err != nil {
				return fmt.Errorf("cutover: database fence on %s: the sessions to spare: %w", inst.ID, err)
			}
			// Sessions, and sessions still starting: those holding
			// their startup lock on one of the databases.
			var left int
			err = conn.QueryRow(ctx, `WITH doomed AS (
					SELECT pid FROM pg_stat_activity
					WHERE datname = ANY($1) AND (backend_type = 'client backend' OR datname = ANY($2))
					UNION
					SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.objid
					WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass AND l.objsubid = 0
					  AND d.datname = ANY($1))
				SELECT count(pg_terminate_backend(pid)) FROM doomed
				WHERE pid <> pg_backend_pid() AND pid <> ALL($3::int8[])`, dbs, strict, spare).Scan(&left)
			if err != nil {
				return fmt.Errorf("cutover: database fence on %s: end sessions of %d database(s): %w", inst.ID, len(dbs), err)
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
				return fmt.Errorf("cutover: database fence on %s: %d session(s) still ending: %w", inst.ID, left, ctx.Err())
			case <-time.After(wait):
			}
		}
	})
}

// sparedPIDs asks every target's Spare for the PIDs to leave running,
// now: a stream that reconnected has new ones.
func sparedPIDs(ctx context.Context, targets []FenceTarget) ([]int64, error) {
	spare := []int64{}
	for _, t := range targets {
		if t.Spare == nil {
			continue
		}
		pids, err := t.Spare.FencePIDs(ctx)
		if err != nil {
			return nil, err
		}
		for _, pid := range pids {
			spare = append(spare, int64(pid))
		}
	}
	return spare, nil
}

// SparePIDs is a FenceSparer that names a fixed set of backends: those of
// a copy that never reconnects inside the window. SparePIDs{} spares none,
// which makes DatabaseFence end every backend of the database, replication
// sessions included.
type SparePIDs []uint32

// FencePIDs implements FenceSparer.
func (s SparePIDs) FencePIDs(context.Context) ([]uint32, error) { return s, nil }

// allowConnections is one simple-protocol round trip that sets
// ALLOW_CONNECTIONS on every database, in one implicit transaction.
func allowConnections(dbs []string, allow bool) string {
	var b strings.Builder
	for _, db := range dbs {
		fmt.Fprintf(&b, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS %t;", pgx.Identifier{db}.Sanitize(), allow)
	}
	return b.String()
}

// byInstance groups targets by instance, in the order they come.
func byInstance(targets []FenceTarget) [][]FenceTarget {
	var out [][]FenceTarget
	at := map[string]int{}
	for _, t := range targets {
		i, ok := at[t.Instance.ID]
		if !ok {
			i = len(out)
			at[t.Instance.ID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], t)
	}
	return out
}

func databasesOf(targets []FenceTarget) []string {
	dbs := make([]string, len(targets))
	for i, t := range targets {
		dbs[i] = t.Tenant.Database
	}
	return dbs
}
