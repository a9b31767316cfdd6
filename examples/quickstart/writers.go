package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
)

// writesTable is the application's table in the tenant's database.
const writesTable = `CREATE TABLE IF NOT EXISTS daisychain_quickstart_writes (
	id     bigserial PRIMARY KEY,
	writer bigint NOT NULL,
	seq    bigint NOT NULL,
	UNIQUE (writer, seq))`

// writers are request handlers of the host: each takes a connection for
// the tenant from the Router, inserts one row, and releases it, without
// pause. They remember every write they were told had committed.
type writers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   writesSeen
	last   time.Time
}

// writesSeen is what the application saw.
type writesSeen struct {
	base     int64     // writer IDs are base+i: unique per run
	acked    [][]int64 // acknowledged sequence numbers, per writer
	errors   int64
	firstErr error
	maxGap   time.Duration // longest time between two acknowledged writes
}

func (s writesSeen) acknowledged() int64 {
	var n int64
	for _, a := range s.acked {
		n += int64(len(a))
	}
	return n
}

func startWriters(router *flags.Router, tenant string, n int) *writers {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{cancel: cancel, seen: writesSeen{base: time.Now().UnixMicro() * 1000, acked: make([][]int64, n)}}
	for i := range n {
		w.wg.Go(func() { w.write(ctx, router, tenant, i) })
	}
	return w
}

func (w *writers) write(ctx context.Context, router *flags.Router, tenant string, i int) {
	for seq := int64(1); ctx.Err() == nil; seq++ {
		err := router.Do(ctx, tenant, func(c *pgxpool.Conn) error {
			_, err := c.Exec(ctx, `INSERT INTO daisychain_quickstart_writes (writer, seq) VALUES ($1, $2)`, w.seen.base+int64(i), seq)
			return err
		})
		now := time.Now()
		w.mu.Lock()
		switch {
		case err == nil:
			w.seen.acked[i] = append(w.seen.acked[i], seq)
			if !w.last.IsZero() {
				w.seen.maxGap = max(w.seen.maxGap, now.Sub(w.last))
			}
			w.last = now
		case !errors.Is(err, context.Canceled):
			w.seen.errors++
			if w.seen.firstErr == nil {
				w.seen.firstErr = fmt.Errorf("writer %d write %d: %w", i, seq, err)
			}
		}
		w.mu.Unlock()
	}
}

// resetGap starts measuring the longest wait afresh.
func (w *writers) resetGap() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen.maxGap = 0
}

// stop stops the writers and returns what they saw.
func (w *writers) stop() writesSeen {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}
