package cutovertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
)

// WorkloadSchema creates the table the Workload writes to. Run it in the
// tenant database before the move, like any application table.
const WorkloadSchema = `CREATE TABLE IF NOT EXISTS daisychain_workload (
	id     bigserial PRIMARY KEY,
	worker bigint NOT NULL,
	seq    bigint NOT NULL,
	at     timestamptz NOT NULL DEFAULT clock_timestamp(),
	UNIQUE (worker, seq))`

// Connector is how a Workload reaches its tenant's database: a
// *flags.Router, or, for a comparison, an application that follows a
// connection string. Do runs fn on a connection and returns its error;
// an error it returns is one the application's user sees.
type Connector interface {
	Do(ctx context.Context, tenantID string, fn func(*pgxpool.Conn) error) error
}

var _ Connector = (*flags.Router)(nil)

// Workload is an application writing to one tenant through a Router
// without pause, on several connections, counting every acknowledged
// write: what a move must not lose and should not interrupt for long.
type Workload struct {
	router  Connector
	tenant  string
	base    int64 // worker IDs are base+i, unique across workloads
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	acked   [][]int64 // acknowledged seqs, per worker
	errs    int64
	first   error
	lastAck time.Time
	maxGap  time.Duration
	// ackedCh is closed (and replaced) at each acknowledged write.
	ackedCh chan struct{}
}

// WorkloadStats is what the application saw.
type WorkloadStats struct {
	// Acknowledged writes: committed, and the application was told so.
	Acknowledged int64
	// Errors the application got.
	Errors int64
	// FirstError is the first of them.
	FirstError error
	// MaxGap is the longest time between two acknowledged writes: the
	// window as the application saw it.
	MaxGap time.Duration
}

// StartWorkload starts workers goroutines that each insert one row per
// transaction into daisychain_workload through router (a *flags.Router),
// until Stop.
func StartWorkload(router Connector, tenant string, workers int) *Workload {
	return StartPacedWorkload(router, tenant, workers, 0)
}

// StartPacedWorkload is StartWorkload with a pause after each write, for
// many tenants on a small machine.
func StartPacedWorkload(router Connector, tenant string, workers int, pause time.Duration) *Workload {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workload{router: router, tenant: tenant, cancel: cancel, acked: make([][]int64, workers), ackedCh: make(chan struct{}),
		base: processBase + workerIDs.Add(int64(workers)) - int64(workers)}
	for i := range workers {
		w.wg.Go(func() { w.work(ctx, i, pause) })
	}
	return w
}

// Worker IDs are unique across the workloads of a process (workerIDs)
// and across processes writing one tenant (processBase).
var (
	processBase = time.Now().UnixMicro() * 1000
	workerIDs   atomic.Int64
)

func (w *Workload) work(ctx context.Context, worker int, pause time.Duration) {
	for seq := int64(1); ctx.Err() == nil; seq++ {
		if pause > 0 && seq > 1 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
		err := w.router.Do(ctx, w.tenant, func(c *pgxpool.Conn) error {
			_, err := c.Exec(ctx, `INSERT INTO daisychain_workload (worker, seq) VALUES ($1, $2)`, w.base+int64(worker), seq)
			return err
		})
		now := time.Now()
		w.mu.Lock()
		switch {
		case err == nil:
			w.acked[worker] = append(w.acked[worker], seq)
			if !w.lastAck.IsZero() {
				w.maxGap = max(w.maxGap, now.Sub(w.lastAck))
			}
			w.lastAck = now
			close(w.ackedCh)
			w.ackedCh = make(chan struct{})
		case ctx.Err() == nil || !errors.Is(err, context.Canceled):
			w.errs++
			if w.first == nil {
				w.first = fmt.Errorf("worker %d write %d: %w", worker, seq, err)
			}
		}
		w.mu.Unlock()
	}
}

// Stats returns what the application has seen so far.
func (w *Workload) Stats() WorkloadStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, a := range w.acked {
		n += int64(len(a))
	}
	return WorkloadStats{Acknowledged: n, Errors: w.errs, FirstError: w.first, MaxGap: w.maxGap}
}

// WaitForAcks waits until n more writes than now are acknowledged: the
// application is seen to write (before a move, or after one, so that
// what follows the switch is checked too). It fails when ctx ends first.
func (w *Workload) WaitForAcks(ctx context.Context, n int64) error {
	target := w.Stats().Acknowledged + n
	for {
		w.mu.Lock()
		got, ch := int64(0), w.ackedCh
		for _, a := range w.acked {
			got += int64(len(a))
		}
		errs, first := w.errs, w.first
		w.mu.Unlock()
		if got >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cutovertest: %d of %d more writes acknowledged (%d errors, first: %v): %w",
				got-(target-n), n, errs, first, ctx.Err())
		case <-ch:
		}
	}
}

// ResetGap starts measuring MaxGap afresh (after a warm-up, say), and
// returns the MaxGap measured until now.
func (w *Workload) ResetGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	gap := w.maxGap
	w.maxGap = 0
	return gap
}

// Stop stops the workers and waits for them.
func (w *Workload) Stop() WorkloadStats {
	w.cancel()
	w.wg.Wait()
	return w.Stats()
}

// Missing counts the acknowledged writes that are not in the database
// conn is connected to (the tenant's database where it lives now).
func (w *Workload) Missing(ctx context.Context, conn *pgx.Conn) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var missing int64
	for worker, seqs := range w.acked {
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM unnest($1::bigint[]) s
			WHERE NOT EXISTS (SELECT 1 FROM daisychain_workload w WHERE w.worker = $2 AND w.seq = s)`,
			seqs, w.base+int64(worker)).Scan(&n); err != nil {
			return 0, fmt.Errorf("cutovertest: check acknowledged writes: %w", err)
		}
		missing += n
	}
	return missing, nil
}
