package cutover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/internal/sentinel"
)

var (
	// ErrMoveInProgress: another move (or Resume) of the same tenant holds
	// its lock, in this process or another. The error names the tenant
	// and the holder.
	ErrMoveInProgress = errors.New("cutover: another move of this tenant is in progress")
	// ErrInstanceBusy: the instance is being converted (no move onto or
	// off it may start), or, for a Convert, a move onto or off it is in
	// progress. The error names the instance and the holder.
	ErrInstanceBusy = errors.New("cutover: the instance is busy")
	// ErrMoveLimit: the moves allowed out of the source or into the
	// target at once (Config.MovesPerSource, MovesPerTarget) are running.
	// It is also ErrInstanceBusy under errors.Is: wait, as for a busy
	// instance.
	ErrMoveLimit = sentinel.New("cutover: the instance's move limit is reached", ErrInstanceBusy)
	// ErrLockLost: the session that held the move's locks ended (a
	// failover of the control database, a terminated session), so
	// another mover may hold them now: the move stopped before its window.
	ErrLockLost = errors.New("cutover: the move's locks were lost")
)

// Lock names one lock that a move, a conversion or a chain holds while
// it runs.
type Lock struct {
	// Key names what is locked ("daisychain.tenant:<id>", say).
	Key string
	// Shared locks of one key are held together; an exclusive one
	// excludes every other.
	Shared bool
	// Slots, if above 0, makes the lock a counting one: it is taken as
	// any one of Slots exclusive locks (SlotKey(Key, 0) to
	// SlotKey(Key, Slots-1)), the first free, so that at most Slots
	// holders hold it at once. Shared is then ignored.
	Slots int
}

// SlotKey names slot i of a counting lock (Lock.Slots).
func SlotKey(key string, i int) string { return key + "#" + strconv.Itoa(i) }

// Lock keys: one mover per tenant; moves share their source and target
// instances, which a conversion takes for itself.
func tenantLock(id string) Lock { return Lock{Key: "daisychain.tenant:" + id} }

func instanceLock(id string, shared bool) Lock {
	return Lock{Key: "daisychain.instance:" + id, Shared: shared}
}

// Move slots (Config.MovesPerSource, MovesPerTarget): counting locks of
// the moves out of an instance and into it.
const (
	movesOutPrefix = "daisychain.moves-out:"
	movesInPrefix  = "daisychain.moves-in:"
)

func movesOutLock(instance string, slots int) Lock {
	return Lock{Key: movesOutPrefix + instance, Slots: slots}
}

func movesInLock(instance string, slots int) Lock {
	return Lock{Key: movesInPrefix + instance, Slots: slots}
}

// LockConflict is one lock TryLock could not take.
type LockConflict struct {
	Lock Lock
	// Holder is who holds it, as it named itself to TryLock; empty if it
	// let go meanwhile or cannot be seen.
	Holder string
	// HolderShared: the holder's lock is shared.
	HolderShared bool
}

// LockConflictError is TryLock's refusal: the locks others hold. None of
// the locks asked for is then held.
type LockConflictError struct{ Conflicts []LockConflict }

func (e *LockConflictError) Error() string {
	parts := make([]string, len(e.Conflicts))
	for i, c := range e.Conflicts {
		holder := c.Holder
		if holder == "" {
			holder = "another session"
		}
		mode := "exclusively"
		if c.HolderShared {
			mode = "shared"
		}
		parts[i] = fmt.Sprintf("%q held %s by %s", c.Lock.Key, mode, holder)
	}
	return "cutover: locks held elsewhere: " + strings.Join(parts, "; ")
}

// HeldLocks are locks TryLock took.
type HeldLocks interface {
	// Check returns nil while every lock is still held, and an error
	// wrapping ErrLockLost once any is not.
	Check(ctx context.Context) error
	// Release lets go of them. It is idempotent.
	Release()
}

// noLocks stands for locks a journal cannot hold.
type noLocks struct{}

func (noLocks) Check(context.Context) error { return nil }
func (noLocks) Release()                    {}

// TryLock takes the locks through j, every one or none, without waiting:
// a refusal is a *LockConflictError. A journal that is not a Locker holds
// no locks: the HeldLocks returned then checks and releases nothing.
// Mover takes its locks through it, and so does drain for a chain.
func TryLock(ctx context.Context, j Journal, holder string, locks ...Lock) (HeldLocks, error) {
	l, ok := j.(Locker)
	if !ok {
		return noLocks{}, nil
	}
	return l.TryLock(ctx, holder, locks...)
}

// Keepalives of a PostgresJournal's lock session: if the host of a mover
// dies without closing it, the control database notices after
// LockOrphanTimeout and lets the locks go.
const (
	lockKeepaliveIdle     = 10 * time.Second
	lockKeepaliveInterval = 5 * time.Second
	lockKeepaliveCount    = 3
)

// LockOrphanTimeout is how long, at most, the locks of a mover whose host
// died outlast it in a PostgresJournal: the lock session's TCP keepalives
// (idle, then probes) tell the control database it is gone. A mover that
// merely crashed closes its connection, and its locks go at once.
const LockOrphanTimeout = lockKeepaliveIdle + lockKeepaliveCount*lockKeepaliveInterval

// lock takes the locks if the journal can hold them, waiting up to
// LockWait for holders to let go (a crashed mover's locks last until the
// control database notices its connection is gone). A refusal names what
// is held and by whom, and wraps ErrMoveInProgress (a tenant) or
// ErrInstanceBusy (an instance).
func (m *Mover) lock(ctx context.Context, holder string, locks ...Lock) (HeldLocks, error) {
	var held HeldLocks
	try := func() error {
		h, err := TryLock(ctx, m.cfg.Journal, holder, locks...)
		var conflict *LockConflictError
		if err != nil && !errors.As(err, &conflict) {
			return backoff.Permanent(err)
		}
		held = h
		return err
	}
	var b backoff.BackOff = &backoff.StopBackOff{}
	if m.cfg.LockWait > 0 {
		eb := backoff.NewExponentialBackOff()
		eb.InitialInterval, eb.MaxInterval, eb.MaxElapsedTime = 50*time.Millisecond, time.Second, m.cfg.LockWait
		b = eb
	}
	err := backoff.Retry(try, backoff.WithContext(b, ctx))
	var conflict *LockConflictError
	if errors.As(err, &conflict) {
		return nil, describeConflicts(conflict)
	}
	if err != nil {
		return nil, fmt.Errorf("cutover: lock for %s: %w", holder, err)
	}
	return held, nil
}

// describeConflicts says what each conflict means to a mover.
func describeConflicts(e *LockConflictError) error {
	var errs []error
	for _, c := range e.Conflicts {
		holder := c.Holder
		if holder == "" {
			holder = "another mover (whose name cannot be read)"
		}
		switch {
		case strings.HasPrefix(c.Lock.Key, "daisychain.tenant:"):
			errs = append(errs, fmt.Errorf("%w: tenant %q is being moved by %s",
				ErrMoveInProgress, strings.TrimPrefix(c.Lock.Key, "daisychain.tenant:"), holder))
		case strings.HasPrefix(c.Lock.Key, "daisychain.instance:"):
			what := "converting it"
			if c.HolderShared {
				what = "moving a tenant onto or off it"
			}
			errs = append(errs, fmt.Errorf("%w: instance %q is in use by %s (%s): wait for it to end",
				ErrInstanceBusy, strings.TrimPrefix(c.Lock.Key, "daisychain.instance:"), holder, what))
		case strings.HasPrefix(c.Lock.Key, movesOutPrefix):
			errs = append(errs, fmt.Errorf("%w: the %d moves allowed out of instance %q at once (Config.MovesPerSource) are running: %s; wait for one to end",
				ErrMoveLimit, c.Lock.Slots, strings.TrimPrefix(c.Lock.Key, movesOutPrefix), holder))
		case strings.HasPrefix(c.Lock.Key, movesInPrefix):
			errs = append(errs, fmt.Errorf("%w: the %d moves allowed into instance %q at once (Config.MovesPerTarget) are running: %s; wait for one to end",
				ErrMoveLimit, c.Lock.Slots, strings.TrimPrefix(c.Lock.Key, movesInPrefix), holder))
		default:
			errs = append(errs, fmt.Errorf("lock %q is held by %s", c.Lock.Key, holder))
		}
	}
	return joinSome(errs)
}

// memoryLocks are a MemoryJournal's locks, within this process.
type memoryLocks map[string][]memoryHold

type memoryHold struct {
	by     *memoryHeld
	holder string
	shared bool
}

type memoryHeld struct {
	j    *MemoryJournal
	once sync.Once
}

// TryLock implements Locker, within this process.
func (j *MemoryJournal) TryLock(_ context.Context, holder string, locks ...Lock) (HeldLocks, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.locks == nil {
		j.locks = memoryLocks{}
	}
	var conflicts []LockConflict
	take := make([]Lock, 0, len(locks)) // slots resolved to the free one
	for _, l := range locks {
		if l.Slots > 0 {
			if free, ok := j.freeSlot(l); ok {
				take = append(take, free)
			} else {
				conflicts = append(conflicts, j.slotConflict(l))
			}
			continue
		}
		take = append(take, l)
		for _, h := range j.locks[l.Key] {
			if !l.Shared || !h.shared {
				conflicts = append(conflicts, LockConflict{Lock: l, Holder: h.holder, HolderShared: h.shared})
				break
			}
		}
	}
	if len(conflicts) > 0 {
		return nil, &LockConflictError{Conflicts: conflicts}
	}
	held := &memoryHeld{j: j}
	for _, l := range take {
		j.locks[l.Key] = append(j.locks[l.Key], memoryHold{by: held, holder: holder, shared: l.Shared})
	}
	return held, nil
}

// freeSlot is the first free slot of a counting lock, as an exclusive lock.
func (j *MemoryJournal) freeSlot(l Lock) (Lock, bool) {
	for i := range l.Slots {
		if k := SlotKey(l.Key, i); len(j.locks[k]) == 0 {
			return Lock{Key: k}, true
		}
	}
	return Lock{}, false
}

// slotConflict names the holders of every slot of a counting lock.
func (j *MemoryJournal) slotConflict(l Lock) LockConflict {
	holders := make([]string, 0, l.Slots)
	for i := range l.Slots {
		for _, h := range j.locks[SlotKey(l.Key, i)] {
			holders = append(holders, h.holder)
		}
	}
	return LockConflict{Lock: l, Holder: strings.Join(holders, ", ")}
}

// Check implements HeldLocks: memory locks are lost only with the process.
func (h *memoryHeld) Check(context.Context) error { return nil }

// Release implements HeldLocks.
func (h *memoryHeld) Release() {
	h.once.Do(func() {
		h.j.mu.Lock()
		defer h.j.mu.Unlock()
		for k, holds := range h.j.locks {
			kept := holds[:0]
			for _, x := range holds {
				if x.by != h {
					kept = append(kept, x)
				}
			}
			if len(kept) == 0 {
				delete(h.j.locks, k)
			} else {
				h.j.locks[k] = kept
			}
		}
	})
}

// lockApplicationPrefix starts the application_name of a lock's session,
// followed by the holder's name: how a conflict names its holder, and how
// an operator finds it in pg_stat_activity.
const lockApplicationPrefix = "daisychain-lock "

// advisoryKey matches the pg_locks row of the advisory lock on
// hashtextextended(key, 0), a bigint split in two oids.
const advisoryKey = `l.locktype = 'advisory' AND l.objsubid = 1
	AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND l.classid = ((hashtextextended(%[1]s, 0) >> 32) & 4294967295)::oid
	AND l.objid = (hashtextextended(%[1]s, 0) & 4294967295)::oid`

// TryLock implements Locker with session advisory locks in the control
// database, held on a connection of their own (not one of the journal's
// pool, which the move needs for its appends) for as long as the move
// runs: if the process dies, the connection and the locks go with it.
func (j *PostgresJournal) TryLock(ctx context.Context, holder string, locks ...Lock) (HeldLocks, error) {
	if len(locks) == 0 {
		return noLocks{}, nil
	}
	cfg := j.pool.Config().ConnConfig.Copy()
	// If this host dies without closing the connection, the server must
	// notice soon, or the locks would outlive the mover by hours.
	cfg.RuntimeParams["tcp_keepalives_idle"] = strconv.Itoa(int(lockKeepaliveIdle / time.Second))
	cfg.RuntimeParams["tcp_keepalives_interval"] = strconv.Itoa(int(lockKeepaliveInterval / time.Second))
	cfg.RuntimeParams["tcp_keepalives_count"] = strconv.Itoa(lockKeepaliveCount)
	cfg.RuntimeParams["application_name"] = lockApplicationPrefix + holder // the server cuts it at 63 bytes
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cutover: lock: %w", err)
	}
	closeConn := func() { _ = conn.Close(context.Background()) }
	var keys []string
	var shared []bool
	var plain, counting []Lock
	for _, l := range locks {
		if l.Slots > 0 {
			counting = append(counting, l)
			continue
		}
		plain = append(plain, l)
		keys, shared = append(keys, l.Key), append(shared, l.Shared)
	}
	rows, err := conn.Query(ctx, `SELECT k FROM unnest($1::text[], $2::bool[]) AS u(k, s)
		WHERE NOT CASE WHEN s THEN pg_try_advisory_lock_shared(hashtextextended(k, 0))
		               ELSE pg_try_advisory_lock(hashtextextended(k, 0)) END`, keys, shared)
	var refused []string
	if err == nil {
		refused, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	var conflicts []LockConflict
	if err == nil && len(refused) > 0 {
		conflicts = j.conflicts(ctx, conn, plain, refused)
	}
	for _, l := range counting {
		if err != nil || len(conflicts) > 0 {
			break // all or none: no slot is worth taking now
		}
		var slot string
		if slot, err = takeSlot(ctx, conn, l); err == nil && slot == "" {
			conflicts = append(conflicts, j.slotConflict(ctx, conn, l))
		}
		keys, shared = append(keys, slot), append(shared, false)
	}
	if err != nil {
		closeConn()
		return nil, fmt.Errorf("cutover: lock: %w", err)
	}
	if len(conflicts) > 0 {
		// Unlock before closing: a closed connection lets go of its
		// locks only once its backend has ended, and a caller that
		// looks again at once must not meet the ones taken here.
		_, _ = conn.Exec(ctx, "SELECT pg_advisory_unlock_all()")
		closeConn()
		return nil, &LockConflictError{Conflicts: conflicts}
	}
	return &postgresLocks{conn: conn, keys: keys, shared: shared}, nil
}

// takeSlot takes the first free slot of a counting lock on conn and
// returns its key, or "" if every slot is held. One statement per slot:
// a single query could not promise to stop at the first lock it takes.
func takeSlot(ctx context.Context, conn *pgx.Conn, l Lock) (string, error) {
	for i := range l.Slots {
		k := SlotKey(l.Key, i)
		var took bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", k).Scan(&took); err != nil {
			return "", err
		}
		if took {
			return k, nil
		}
	}
	return "", nil
}

// slotConflict names the holders of a counting lock's slots.
func (j *PostgresJournal) slotConflict(ctx context.Context, conn *pgx.Conn, l Lock) LockConflict {
	slots := make([]Lock, l.Slots)
	keys := make([]string, l.Slots)
	for i := range slots {
		keys[i] = SlotKey(l.Key, i)
		slots[i] = Lock{Key: keys[i]}
	}
	holders := make([]string, 0, l.Slots)
	for _, c := range j.conflicts(ctx, conn, slots, keys) {
		holders = append(holders, cmp.Or(c.Holder, "another session"))
	}
	return LockConflict{Lock: l, Holder: strings.Join(holders, ", ")}
}

// Held implements LockInspector with one query over the journal's pool.
func (j *PostgresJournal) Held(ctx context.Context, locks ...Lock) ([]bool, error) {
	keys, slots := make([]string, len(locks)), make([]int, len(locks))
	for i, l := range locks {
		keys[i], slots[i] = l.Key, l.Slots
	}
	rows, err := j.pool.Query(ctx, `SELECT EXISTS (
			SELECT 1 FROM generate_series(0, greatest(u.n, 1) - 1) AS s(i), pg_locks l
			WHERE `+fmt.Sprintf(advisoryKey, "CASE WHEN u.n > 0 THEN u.k || '#' || s.i ELSE u.k END")+` AND l.granted)
		FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS u(k, n, ord) ORDER BY u.ord`, keys, slots)
	if err != nil {
		return nil, fmt.Errorf("cutover: read held locks: %w", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil {
		return nil, fmt.Errorf("cutover: read held locks: %w", err)
	}
	return held, nil
}

// Held implements LockInspector, within this process.
func (j *MemoryJournal) Held(_ context.Context, locks ...Lock) ([]bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	held := make([]bool, len(locks))
	for i, l := range locks {
		if l.Slots == 0 {
			held[i] = len(j.locks[l.Key]) > 0
			continue
		}
		for s := range l.Slots {
			held[i] = held[i] || len(j.locks[SlotKey(l.Key, s)]) > 0
		}
	}
	return held, nil
}

// conflicts names the holders of the refused locks, as far as
// pg_stat_activity shows them, in one query whatever their number (a
// conversion of a thousand tenants refuses a thousand and one).
func (j *PostgresJournal) conflicts(ctx context.Context, conn *pgx.Conn, locks []Lock, refused []string) []LockConflict {
	type holder struct {
		shared bool
		app    *string
	}
	holders := map[string]holder{}
	rows, err := conn.Query(ctx, `SELECT DISTINCT ON (u.k) u.k, l.mode = 'ShareLock', a.application_name
		FROM unnest($1::text[]) AS u(k)
		JOIN pg_locks l ON `+fmt.Sprintf(advisoryKey, "u.k")+`
		LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.granted AND l.pid <> pg_backend_pid()
		ORDER BY u.k, l.mode = 'ExclusiveLock' DESC`, refused)
	if err == nil {
		for rows.Next() {
			var k string
			var h holder
			if rows.Scan(&k, &h.shared, &h.app) == nil {
				holders[k] = h
			}
		}
		rows.Close()
	}
	isRefused := map[string]bool{}
	for _, k := range refused {
		isRefused[k] = true
	}
	var out []LockConflict
	for _, l := range locks {
		if !isRefused[l.Key] {
			continue
		}
		c := LockConflict{Lock: l}
		if h, ok := holders[l.Key]; ok {
			c.HolderShared = h.shared
			if h.app != nil {
				c.Holder = strings.TrimPrefix(*h.app, lockApplicationPrefix)
			}
		}
		out = append(out, c)
	}
	return out
}

// postgresLocks are advisory locks held by one session.
type postgresLocks struct {
	mu     sync.Mutex
	conn   *pgx.Conn // nil once released
	keys   []string
	shared []bool
}

// Check implements HeldLocks: the session must be alive and hold every
// lock, as pg_locks shows for its own pid.
func (h *postgresLocks) Check(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		return fmt.Errorf("%w: they were released", ErrLockLost)
	}
	var n int
	err := h.conn.QueryRow(ctx, `SELECT count(*) FROM unnest($1::text[], $2::bool[]) AS u(k, s)
		JOIN pg_locks l ON `+fmt.Sprintf(advisoryKey, "u.k")+`
		WHERE l.pid = pg_backend_pid() AND l.granted
		  AND l.mode = CASE WHEN u.s THEN 'ShareLock' ELSE 'ExclusiveLock' END`, h.keys, h.shared).Scan(&n)
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("%w: the session that held them is gone: %v", ErrLockLost, err)
	case n != len(h.keys):
		return fmt.Errorf("%w: %d of its %d locks are no longer held", ErrLockLost, len(h.keys)-n, len(h.keys))
	}
	return nil
}

// Release implements HeldLocks.
func (h *postgresLocks) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		// Unlock before closing: a closed connection lets go of its locks
		// only once the server has ended its backend, which a caller that
		// locks again right after Release can beat.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = h.conn.Exec(ctx, "SELECT pg_advisory_unlock_all()")
		_ = h.conn.Close(ctx)
		cancel()
		h.conn = nil
	}
}
