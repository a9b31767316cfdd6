package cutover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// The window's steps, the same for a move and a conversion. Each does
// its work over the whole set of tenants at once, through the admin
// sessions the run holds: its cost does not grow with the tenants.

// pause holds the tenants' new work in the Routers.
func (r *run) pause(ctx context.Context) (any, error) {
	return r.publishAll(ctx, r.src, true)
}

// switchRoutes publishes every route to the destination: the point of no
// return.
func (r *run) switchRoutes(ctx context.Context) (any, error) {
	return r.publishAll(ctx, r.tgt, false)
}

// publishAll points every route at inst, and returns what the journal
// keeps of it: the highest epoch, which Resume takes as the floor of
// every route of the set.
func (r *run) publishAll(ctx context.Context, inst fleet.Instance, paused bool) (any, error) {
	err := r.m.publishSet(ctx, r.routeRefs(nil), inst, paused)
	return r.epochs(inst, paused, 0), err
}

// pauseRecord is the pause step's started detail: the highest epoch the
// pause is about to publish, journaled before it does, so that a Resume
// of a run killed during the pause starts above it.
func (r *run) pauseRecord() (any, error) {
	return r.epochs(r.src, true, 1), nil
}

// epochs describes the set's routes to inst: the highest epoch, plus
// ahead (1 for the epochs about to be published).
func (r *run) epochs(inst fleet.Instance, paused bool, ahead int64) epochDetail {
	d := epochDetail{Tenants: len(r.routes), Instance: inst.ID, Paused: paused}
	if len(r.routes) == 1 {
		d.Tenant, d.Tenants = r.routes[0].tenant, 0
	}
	for _, tr := range r.routes {
		d.Epoch = max(d.Epoch, tr.epoch+ahead)
	}
	return d
}

// quiesce waits, up to QuiesceGrace, until no client session on the source
// databases has been starting, inside a transaction or running a
// statement for Config.QuietSpell: the work the paused routes let in has
// finished. What is still running then is ended by the fence. Without a
// route pause (NoRoutePause) nothing holds new work, so no quiet spell is
// waited for: the step ends at the first moment nothing runs.
func (r *run) quiesce(ctx context.Context) (any, error) {
	if r.m.cfg.QuiesceGrace < 0 {
		return nil, nil
	}
	dbs := r.databases()
	busy := 0
	err := r.admin.do(ctx, r.src, dbs, func(conn *pgx.Conn) error {
		deadline := time.Now().Add(r.m.cfg.QuiesceGrace)
		for {
			var quietUS int64
			// Busy: sessions in a transaction or a statement, and
			// sessions still starting (they hold their startup lock on
			// the database until they show in pg_stat_activity): a
			// connection a Router opened just before the pause.
			if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state <> 'idle') + (
					SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_database d ON d.oid = l.objid
					WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass AND l.objsubid = 0
					  AND d.datname = ANY($1) AND l.pid <> pg_backend_pid()),
				coalesce(extract(epoch FROM clock_timestamp() - max(state_change)) * 1e6, 3.6e9)::int8
				FROM pg_stat_activity
				WHERE datname = ANY($1) AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
				dbs).Scan(&busy, &quietUS); err != nil {
				return fmt.Errorf("count in-flight sessions: %w", err)
			}
			quiet, want := time.Duration(quietUS)*time.Microsecond, r.m.cfg.QuietSpell
			if r.m.cfg.NoRoutePause {
				quiet = want
			}
			if busy == 0 && quiet >= want || time.Now().After(deadline) {
				return nil
			}
			wait := 2 * time.Millisecond
			if busy == 0 {
				wait = max(wait, want-quiet)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	})
	return map[string]int{"still_busy": busy}, err
}

// fenceTargets are what the fences guard, sparing what spare names.
func (r *run) fenceTargets(spare FenceSparer) []FenceTarget {
	out := make([]FenceTarget, len(r.tenants))
	for i, t := range r.tenants {
		t.Instance = r.src.ID // the fences guard the source copy
		out[i] = FenceTarget{Tenant: t, Instance: r.src, Spare: spare, admin: r.admin}
	}
	return out
}

// prepareFences opens, before the window, what the fences use inside it:
// the console session of a PgBouncerFence, which checks that PgBouncer
// has every database, so that a missing one rolls the run back before
// the window opens.
func (r *run) prepareFences(ctx context.Context) error {
	targets := r.fenceTargets(nil)
	for _, f := range r.m.cfg.Fences {
		if pgb := asPgBouncerFence(f); pgb != nil {
			if err := pgb.prepare(ctx, targets); err != nil {
				return fmt.Errorf("fence %s: %w", f.Name(), err)
			}
		}
	}
	return nil
}

// fenceRecords is the fence step's started detail: which fences go up,
// so that Resume releases those.
func (r *run) fenceRecords() (any, error) {
	records, err := recordFences(r.m.cfg.Fences, r.fenceTargets(nil))
	return fenceStart{Records: records}, err
}

// fence holds every fence over the set, then checks that no prepared
// transaction appeared meanwhile.
func (r *run) fence(ctx context.Context) (any, error) {
	targets := r.fenceTargets(r.copy.spare())
	var names []string
	for _, f := range r.m.cfg.Fences {
		// Recorded before Hold: a Hold that fails half-way is still
		// released.
		r.held = append(r.held, f)
		if err := holdAll(ctx, f, targets); err != nil {
			return nil, fmt.Errorf("fence %s: %w", f.Name(), err)
		}
		names = append(names, f.Name())
	}
	if err := r.checkPrepared(ctx); err != nil {
		return nil, err
	}
	if !r.m.cfg.NoRoutePause {
		r.rep.Fences = append([]string{"route pause"}, names...)
	} else {
		r.rep.Fences = names
	}
	return map[string][]string{"fences": names}, nil
}

// releaseFences takes the fences that may be up down, in reverse order.
func (r *run) releaseFences(ctx context.Context) error {
	targets := r.fenceTargets(nil)
	var errs []error
	for i := len(r.held) - 1; i >= 0; i-- {
		if err := releaseAll(ctx, r.held[i], targets); err != nil {
			errs = append(errs, fmt.Errorf("release fence %s: %w", r.held[i].Name(), err))
		}
	}
	return joinSome(errs)
}

// holdAll holds f over targets: at once if f can, else target by target,
// parallelDefault at a time.
func holdAll(ctx context.Context, f Fence, targets []FenceTarget) error {
	if bf, ok := f.(BatchFence); ok {
		return bf.HoldAll(ctx, targets)
	}
	return eachTarget(ctx, targets, f.Hold)
}

// releaseAll releases f over targets, as holdAll holds it.
func releaseAll(ctx context.Context, f Fence, targets []FenceTarget) error {
	if bf, ok := f.(BatchFence); ok {
		return bf.ReleaseAll(ctx, targets)
	}
	return eachTarget(ctx, targets, f.Release)
}

// eachTarget runs fn on every target, parallelDefault at a time; an error
// names its tenant.
func eachTarget(ctx context.Context, targets []FenceTarget, fn func(context.Context, FenceTarget) error) error {
	return inParallel(ctx, len(targets), parallelDefault, func(ctx context.Context, i int) error {
		if err := fn(ctx, targets[i]); err != nil {
			return fmt.Errorf("%q: %w", targets[i].Tenant.ID, err)
		}
		return nil
	})
}

// checkPrepared refuses a window with prepared transactions in the source
// databases: they are not streamed (they are decoded only when committed),
// and once the databases are fenced they can be committed nowhere.
// Preflight checked too, but one may have been prepared since.
func (r *run) checkPrepared(ctx context.Context) error {
	dbs := r.databases()
	var prepared []string
	err := r.admin.do(ctx, r.src, dbs, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT format('%L in %I', gid, database) FROM pg_prepared_xacts
			WHERE database = ANY($1) ORDER BY database, gid`, dbs)
		if err != nil {
			return err
		}
		prepared, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return fmt.Errorf("count prepared transactions: %w", err)
	}
	if len(prepared) > 0 {
		return fmt.Errorf("%d prepared transaction(s) appeared during the move (%s): COMMIT PREPARED or ROLLBACK PREPARED them on the source, then move again",
			len(prepared), joinFirst(prepared, 5))
	}
	return nil
}

// barrier takes the source's position after the fence.
func (r *run) barrier(ctx context.Context) (any, error) {
	pos, err := r.follow.Barrier(ctx)
	r.barrierPos = pos
	return map[string]string{"position": pos.String()}, err
}

// maxReconnects bounds how many times one window lets its stream
// reconnect (see waitTarget).
const maxReconnects = 2

// waitTarget returns once the destination has applied the barrier.
//
// A stream that lost its connection to the source inside the window (the
// source restarted) cannot come back through a fence that refuses
// connections, and WaitFor fails with replica.ErrNotStreaming. Then the
// fences come down while the routes stay paused, the stream reconnects
// (Ready), the fences go up again sparing its new sessions, and the
// target waits for a new barrier: a write that came in meanwhile through
// another way than a Router is before that barrier, so it is carried.
// All of it counts against the budget.
func (r *run) waitTarget(ctx context.Context) (any, error) {
	for reconnected := 0; ; reconnected++ {
		err := r.follow.WaitFor(ctx, r.barrierPos)
		if err == nil || !errors.Is(err, replica.ErrNotStreaming) || reconnected == maxReconnects {
			return map[string]int{"reconnected": reconnected}, err
		}
		r.m.cfg.Logger.Warn("cutover: the stream lost the source inside the window; the fences come down for it to reconnect, the routes stay paused",
			"move", r.p.Move, "err", err)
		r.rep.StreamReconnects++
		if rerr := r.letStreamReconnect(ctx); rerr != nil {
			return map[string]int{"reconnected": reconnected}, fmt.Errorf("%w; letting it reconnect: %w", err, rerr)
		}
	}
}

// letStreamReconnect takes the fences down, waits for the stream to be
// connected again, puts the fences back up and takes a new barrier.
func (r *run) letStreamReconnect(ctx context.Context) error {
	if err := r.releaseFences(ctx); err != nil {
		return err
	}
	r.held = nil
	if err := r.copy.ready(ctx); err != nil {
		return err
	}
	if _, err := r.fence(ctx); err != nil {
		return err
	}
	_, err := r.barrier(ctx)
	return err
}
