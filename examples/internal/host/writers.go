package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// WritesTable is the application's table in a tenant's database.
const WritesTable = `CREATE TABLE IF NOT EXISTS daisychain_example_writes (
	id     bigserial PRIMARY KEY,
	writer bigint NOT NULL,
	seq    bigint NOT NULL,
	UNIQUE (writer, seq))`

// Writers are request handlers of the host: each takes a connection for
// the tenant from the Router, inserts one row, releases it, and pauses
// Pause before the next. They remember every write they were told had
// committed.
type Writers struct {
	tenant string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   Seen
	last   time.Time
}

// Seen is what the application saw.
type Seen struct {
	base     int64     // writer IDs are base+i: unique per process and tenant
	acked    [][]int64 // acknowledged sequence numbers, per writer
	Errors   int64
	FirstErr error
	// MaxGap is the longest time between two acknowledged writes.
	MaxGap time.Duration
}

// Acknowledged counts the writes the application was told had committed.
func (s Seen) Acknowledged() int64 {
	var n int64
	for _, a := range s.acked {
		n += int64(len(a))
	}
	return n
}

var writerBase = struct {
	sync.Mutex
	next int64
}{next: time.Now().UnixMicro() * 1000}

// StartWriters starts n writers of the tenant through router, pausing
// pause after each write (0: none). Stop them.
func StartWriters(router *flags.Router, tenant string, n int, pause time.Duration) *Writers {
	writerBase.Lock()
	base := writerBase.next
	writerBase.next += int64(n)
	writerBase.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writers{tenant: tenant, cancel: cancel, seen: Seen{base: base, acked: make([][]int64, n)}}
	for i := range n {
		w.wg.Go(func() { w.write(ctx, router, i, pause) })
	}
	return w
}

func (w *Writers) write(ctx context.Context, router *flags.Router, i int, pause time.Duration) {
	for seq := int64(1); ctx.Err() == nil; seq++ {
		if pause > 0 && seq > 1 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
		err := router.Do(ctx, w.tenant, func(c *pgxpool.Conn) error {
			_, err := c.Exec(ctx, `INSERT INTO daisychain_example_writes (writer, seq) VALUES ($1, $2)`, w.seen.base+int64(i), seq)
			return err
		})
		now := time.Now()
		w.mu.Lock()
		switch {
		case err == nil:
			w.seen.acked[i] = append(w.seen.acked[i], seq)
			if !w.last.IsZero() {
				w.seen.MaxGap = max(w.seen.MaxGap, now.Sub(w.last))
			}
			w.last = now
		case !errors.Is(err, context.Canceled):
			w.seen.Errors++
			if w.seen.FirstErr == nil {
				w.seen.FirstErr = fmt.Errorf("tenant %s writer %d write %d: %w", w.tenant, i, seq, err)
			}
		}
		w.mu.Unlock()
	}
}

// ResetGap starts measuring the longest wait afresh, and returns the
// longest wait measured until now.
func (w *Writers) ResetGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	gap := w.seen.MaxGap
	w.seen.MaxGap = 0
	return gap
}

// Stop stops the writers and returns what they saw.
func (w *Writers) Stop() Seen {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}

// Missing counts the acknowledged writes absent from the tenant's
// database where the catalog says it lives now, connecting with the
// catalog's admin string of that instance.
func (s Seen) Missing(ctx context.Context, catalog fleet.Catalog, tenant string) (int64, error) {
	where, err := catalog.Locate(ctx, tenant)
	if err != nil {
		return 0, err
	}
	inst, err := catalog.Instance(ctx, where.Instance)
	if err != nil {
		return 0, err
	}
	cfg, err := pgx.ParseConfig(inst.Admin)
	if err != nil {
		return 0, fmt.Errorf("host: instance %q: the connection string does not parse", inst.ID)
	}
	cfg.Database = where.Database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var missing int64
	for worker, seqs := range s.acked {
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM unnest($1::bigint[]) s
			WHERE NOT EXISTS (SELECT 1 FROM daisychain_example_writes w WHERE w.writer = $2 AND w.seq = s)`,
			seqs, s.base+int64(worker)).Scan(&n); err != nil {
			return 0, fmt.Errorf("host: check acknowledged writes of %s: %w", tenant, err)
		}
		missing += n
	}
	return missing, nil
}
