package cutover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrMoveInProgress: another move (or Resume) of the same tenant holds
// its lock, in this process or another.
var ErrMoveInProgress = errors.New("cutover: another move of this tenant is in progress")

// locker is the optional capability of a Journal to hold locks across
// processes while a move runs, so that two movers (a Move and a Resume of
// it, say) never act on one tenant at once. Both journals of this package
// have it.
type locker interface {
	// TryLock takes every lock named in keys, or none, failing at once
	// with ErrMoveInProgress. unlock releases them.
	TryLock(ctx context.Context, keys ...string) (unlock func(), err error)
}

// lockTenants takes the tenants' locks if the journal can hold them,
// waiting up to LockWait for a holder to let go (a crashed mover's locks
// last until the control database notices its connection is gone).
func (m *Mover) lockTenants(ctx context.Context, tenants ...string) (func(), error) {
	l, ok := m.cfg.Journal.(locker)
	if !ok {
		return func() {}, nil
	}
	keys := make([]string, len(tenants))
	for i, t := range tenants {
		keys[i] = "daisychain.tenant:" + t
	}
	deadline := time.Now().Add(m.cfg.LockWait)
	for {
		unlock, err := l.TryLock(ctx, keys...)
		if err == nil {
			return unlock, nil
		}
		if !errors.Is(err, ErrMoveInProgress) || time.Now().After(deadline) {
			return nil, fmt.Errorf("tenants %q: %w", tenants, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("tenants %q: %w: %w", tenants, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TryLock implements locker, within this process.
func (j *MemoryJournal) TryLock(_ context.Context, keys ...string) (func(), error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.locks == nil {
		j.locks = map[string]bool{}
	}
	for _, k := range keys {
		if j.locks[k] {
			return nil, ErrMoveInProgress
		}
	}
	for _, k := range keys {
		j.locks[k] = true
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			j.mu.Lock()
			for _, k := range keys {
				delete(j.locks, k)
			}
			j.mu.Unlock()
		})
	}, nil
}

// TryLock implements locker with session advisory locks in the control
// database, held on a connection of their own (not one of the journal's
// pool, which the move needs for its appends) for as long as the move
// runs: if the process dies, the connection and the locks go with it.
func (j *PostgresJournal) TryLock(ctx context.Context, keys ...string) (func(), error) {
	if len(keys) == 0 {
		return func() {}, nil
	}
	cfg := j.pool.Config().ConnConfig.Copy()
	// If this host dies without closing the connection, the server must
	// notice soon, or the locks would outlive the mover by hours.
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	cfg.RuntimeParams["application_name"] = "daisychain-move-lock"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cutover: lock: %w", err)
	}
	closeConn := func() { _ = conn.Close(context.Background()) }
	var got bool
	err = conn.QueryRow(ctx, `SELECT bool_and(pg_try_advisory_lock(hashtextextended(k, 0)))
		FROM unnest($1::text[]) k`, keys).Scan(&got)
	if err != nil {
		closeConn()
		return nil, fmt.Errorf("cutover: lock: %w", err)
	}
	if !got {
		closeConn() // releases the keys it did get
		return nil, ErrMoveInProgress
	}
	var once sync.Once
	return func() { once.Do(closeConn) }, nil
}
