package cutover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrMoveInProgress: another move (or Resume) of the same tenant holds
// its lock, in this process or another.
var ErrMoveInProgress = errors.New("cutover: another move of this tenant is in progress")

// locker is the optional capability of a Journal to hold a lock across
// processes while a move of a tenant runs, so that two movers (a Move and
// a Resume of it, say) never act on one tenant at once. Both journals of
// this package have it.
type locker interface {
	// TryLock takes the lock named key or fails at once with
	// ErrMoveInProgress. unlock releases it.
	TryLock(ctx context.Context, key string) (unlock func(), err error)
}

// lockTenant takes the tenant's lock if the journal can hold one, waiting
// up to LockWait for a holder to let go (a crashed mover's lock lasts
// until the control database notices its connection is gone).
func (m *Mover) lockTenant(ctx context.Context, tenant string) (func(), error) {
	l, ok := m.cfg.Journal.(locker)
	if !ok {
		return func() {}, nil
	}
	deadline := time.Now().Add(m.cfg.LockWait)
	for {
		unlock, err := l.TryLock(ctx, "daisychain.tenant:"+tenant)
		if err == nil {
			return unlock, nil
		}
		if !errors.Is(err, ErrMoveInProgress) || time.Now().After(deadline) {
			return nil, fmt.Errorf("tenant %q: %w", tenant, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("tenant %q: %w: %w", tenant, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TryLock implements locker, within this process.
func (j *MemoryJournal) TryLock(_ context.Context, key string) (func(), error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.locks == nil {
		j.locks = map[string]bool{}
	}
	if j.locks[key] {
		return nil, ErrMoveInProgress
	}
	j.locks[key] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			j.mu.Lock()
			delete(j.locks, key)
			j.mu.Unlock()
		})
	}, nil
}

// TryLock implements locker with a session advisory lock in the control
// database, held on a connection of the journal's pool for as long as the
// move runs: if the process dies, the connection and the lock go with it.
func (j *PostgresJournal) TryLock(ctx context.Context, key string) (func(), error) {
	conn, err := j.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("cutover: lock %s: %w", key, err)
	}
	// If this host dies without closing the connection, the server must
	// notice soon, or the lock would outlive the mover by hours.
	if _, err := conn.Exec(ctx, "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"); err != nil {
		conn.Release()
		return nil, fmt.Errorf("cutover: lock %s: %w", key, err)
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key).Scan(&got); err != nil {
		conn.Release()
		return nil, fmt.Errorf("cutover: lock %s: %w", key, err)
	}
	if !got {
		conn.Release()
		return nil, ErrMoveInProgress
	}
	var once sync.Once
	return func() { once.Do(func() { unlockAdvisory(conn, key) }) }, nil
}

func unlockAdvisory(conn *pgxpool.Conn, key string) {
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0)); RESET tcp_keepalives_idle; RESET tcp_keepalives_interval; RESET tcp_keepalives_count", key); err != nil {
		// A connection whose unlock failed may still hold the lock: close
		// it rather than return it to the pool.
		_ = conn.Hijack().Close(ctx)
		return
	}
	conn.Release()
}
