package fleetjobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// itemsSchema is a tenant's application table besides the workload's.
const itemsSchema = `CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL)`

// busySnooze and lockWait are short so that a job meeting a busy tenant
// comes back within the test.
const (
	busySnooze = time.Second
	lockWait   = 200 * time.Millisecond
)

// sharedFleet is one fleet (control database, pg-a, pg-b) and one worker
// process's River client over it, shared by the tests: each moves tenants
// of its own.
type sharedFleet struct {
	*cutovertest.Fleet
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

var (
	shared     *sharedFleet
	sharedErr  error
	sharedOnce sync.Once
)

// fleetFor starts the shared fleet on first use (a crash child never
// does), or fails t.
func fleetFor(t *testing.T) *sharedFleet {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = startSharedFleet(context.Background()) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func startSharedFleet(ctx context.Context) (_ *sharedFleet, err error) {
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		return nil, err
	}
	s := &sharedFleet{Fleet: f}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()
	if s.pool, err = pgxpool.New(ctx, f.URL); err != nil {
		return s, err
	}
	if err = fleetjobs.Migrate(ctx, s.pool, nil); err != nil {
		return s, err
	}
	mover, err := f.Mover(&cutover.Config{WindowBudget: time.Minute, LockWait: lockWait})
	if err != nil {
		return s, err
	}
	s.client, err = startWorker(ctx, s.pool, &fleetjobs.Config{Mover: mover, Journal: f.Journal, BusySnooze: busySnooze}, nil)
	return s, err
}

func (s *sharedFleet) close() error {
	var errs []error
	ctx := context.Background()
	if s.client != nil {
		errs = append(errs, s.client.Stop(ctx))
	}
	if s.pool != nil {
		s.pool.Close()
	}
	return errors.Join(append(errs, s.Fleet.Close())...)
}

type withSharedFleet struct{ m *testing.M }

func (w withSharedFleet) Run() int {
	code := w.m.Run()
	if shared != nil {
		if err := shared.close(); err != nil {
			fmt.Fprintln(os.Stderr, "fleetjobs tests: stop the shared fleet:", err)
			code = 1
		}
	}
	return code
}

// waitJob waits until the job is finalized (completed, cancelled or
// discarded) and returns its row.
func (s *sharedFleet) waitJob(t *testing.T, id int64) *rivertype.JobRow {
	t.Helper()
	return waitFinalized(t, s.client, id)
}

func waitFinalized(t *testing.T, client *river.Client[pgx.Tx], id int64) *rivertype.JobRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		job, err := client.JobGet(ctx, id)
		if err != nil {
			t.Fatalf("job %d: %v", id, err)
		}
		if job.FinalizedAt != nil {
			return job
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %d still %s after attempt %d: %v", id, job.State, job.Attempt, job.Errors)
		case <-tick.C:
		}
	}
}

// addTenant creates a tenant on pg-a, named from base and unique in the
// shared fleet (tests may run again in it: -count), and starts an
// application writing to it through the Router.
func (s *sharedFleet) addTenant(t *testing.T, base string) (string, *cutovertest.Workload) {
	t.Helper()
	tenant := fmt.Sprintf("%s_%d", base, tenantSeq.Add(1))
	if err := s.AddTenant(context.Background(), tenant, tenant, "pg-a", itemsSchema); err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(s.Router, tenant, 2)
	t.Cleanup(func() { w.Stop() })
	waitForAcks(t, w, 10)
	return tenant, w
}

var tenantSeq atomic.Int64

func waitForAcks(t *testing.T, w *cutovertest.Workload, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WaitForAcks(ctx, n); err != nil {
		t.Fatal(err)
	}
}
