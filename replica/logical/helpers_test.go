package logical_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var provider = &logical.Provider{PollInterval: 100 * time.Millisecond}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func spec(id string, src *localpg.Instance, srcDB string, dst *localpg.Instance, dstDB string) replica.Spec {
	return replica.Spec{
		ID: id, Source: src.ConnString("postgres"), SourceDatabase: srcDB,
		Target: dst.ConnString("postgres"), TargetDatabase: dstDB,
	}
}

func execSQL(t testing.TB, inst *localpg.Instance, db string, sqls ...string) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	conn, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func queryInt(t testing.TB, inst *localpg.Instance, db, q string, args ...any) int64 {
	t.Helper()
	return queryValue[int64](t, inst, db, q, args...)
}

// queryValue returns the one value q returns.
func queryValue[T any](t testing.TB, inst *localpg.Instance, db, q string, args ...any) T {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	conn, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func databaseExists(t testing.TB, inst *localpg.Instance, db string) bool {
	return queryInt(t, inst, "postgres", `SELECT count(*) FROM pg_database WHERE datname = $1`, db) > 0
}

// assertNoReplicationObjects checks that no slot, subscription or (in
// the databases given) publication exists on inst.
func assertNoReplicationObjects(t testing.TB, inst *localpg.Instance, dbs ...string) {
	t.Helper()
	if n := queryInt(t, inst, "postgres", `SELECT count(*) FROM pg_replication_slots`); n != 0 {
		t.Errorf("%s: %d replication slots left", inst.Name(), n)
	}
	if n := queryInt(t, inst, "postgres", `SELECT count(*) FROM pg_subscription`); n != 0 {
		t.Errorf("%s: %d subscriptions left", inst.Name(), n)
	}
	for _, db := range dbs {
		if !databaseExists(t, inst, db) {
			continue
		}
		if n := queryInt(t, inst, db, `SELECT count(*) FROM pg_publication`); n != 0 {
			t.Errorf("%s/%s: %d publications left", inst.Name(), db, n)
		}
	}
}

func waitPhase(t testing.TB, st replica.Stream, want replica.Phase, timeout time.Duration) replica.Progress {
	t.Helper()
	ctx := testCtx(t, timeout)
	for {
		p, err := st.Progress(ctx)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("progress: %v", err)
		}
		if p.Err != nil {
			t.Fatalf("stream failed: %v", p.Err)
		}
		if p.Phase == want {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("phase %s not reached in %s; last progress %+v", want, timeout, p)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startStreaming starts sp and waits until it streams. The stream is
// aborted when the test ends, and that must work.
func startStreaming(t testing.TB, sp replica.Spec) replica.Stream {
	t.Helper()
	return startStreamingWith(t, provider, sp)
}

// startStreamingWith is startStreaming with Provider p.
func startStreamingWith(t testing.TB, p *logical.Provider, sp replica.Spec) replica.Stream {
	t.Helper()
	st, err := p.Start(testCtx(t, 2*time.Minute), sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Abort(testCtx(t, time.Minute)); err != nil {
			t.Errorf("abort: %v", err)
		}
	})
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	return st
}

// catchUp fences nothing: it takes a barrier and waits for it.
func catchUp(t testing.TB, st replica.Stream, timeout time.Duration) time.Duration {
	t.Helper()
	ctx := testCtx(t, timeout)
	t0 := time.Now()
	pos, err := st.Barrier(ctx)
	if err != nil {
		t.Fatalf("barrier: %v", err)
	}
	if err := st.WaitFor(ctx, pos); err != nil {
		t.Fatalf("wait for %s: %v", pos, err)
	}
	return time.Since(t0)
}

// Names with quotes, spaces, capitals and non-ASCII letters.
const (
	weirdTable  = `Kunden "Ä" Liste`
	weirdColumn = `Name "Ü" Größe`
)

var qWeirdTable, qWeirdColumn = pgx.Identifier{weirdTable}.Sanitize(), pgx.Identifier{weirdColumn}.Sanitize()

// createTenant creates a tenant schema with awkward names, sequences
// (identity, serial, standalone), a partitioned table, a foreign key, a
// secondary index, a trigger and rows.
func createTenant(t testing.TB, inst *localpg.Instance, db string, rows int) {
	t.Helper()
	localpgtest.CreateDatabase(t, inst, db)
	execSQL(t, inst, db,
		`CREATE TABLE `+qWeirdTable+` (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, `+qWeirdColumn+` text NOT NULL, "Größe" int)`,
		`CREATE TABLE orders (id serial PRIMARY KEY, kunde bigint REFERENCES `+qWeirdTable+`(id) ON DELETE CASCADE,
			amount numeric(12,2), note text, updated timestamptz DEFAULT now())`,
		`CREATE INDEX orders_kunde ON orders (kunde)`,
		`CREATE SEQUENCE standalone_seq`,
		`CREATE TABLE events (id bigint, at date, payload jsonb, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`,
		`CREATE TABLE events_a PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
		`CREATE TABLE events_b PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
		`CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated := now(); RETURN NEW; END $$`,
		`CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()`,
		fmt.Sprintf(`INSERT INTO %s (%s, "Größe") SELECT 'kunde ' || i || ' Ä''"', i FROM generate_series(1, %d) i`,
			qWeirdTable, qWeirdColumn, max(rows/10, 1)),
		fmt.Sprintf(`INSERT INTO orders (kunde, amount, note) SELECT 1 + i %% %d, i / 7.0, repeat('x', i %% 50) FROM generate_series(1, %d) i`,
			max(rows/10, 1), rows),
		fmt.Sprintf(`INSERT INTO events SELECT i, date '2025-06-01' + (i %% 400), jsonb_build_object('i', i) FROM generate_series(1, %d) i`, rows),
		`SELECT setval('standalone_seq', 42)`,
	)
}

// writer runs inserts, updates and deletes against a tenant database
// until stop, tolerating errors (a restarting server); it counts
// committed transactions.
type writer struct {
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	committed atomic.Int64
	failed    atomic.Int64
	pool      *pgxpool.Pool
	step      func(ctx context.Context, tx pgx.Tx, rnd *rand.Rand) error
}

func startWriter(t testing.TB, inst *localpg.Instance, db string, workers int) *writer {
	return startWriterFunc(t, inst, db, workers, tenantStep)
}

func startWriterFunc(t testing.TB, inst *localpg.Instance, db string, workers int,
	step func(ctx context.Context, tx pgx.Tx, rnd *rand.Rand) error) *writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := pgxpool.New(ctx, inst.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{cancel: cancel, pool: pool, step: step}
	for i := range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 7))
			for ctx.Err() == nil {
				if err := w.run(ctx, rnd); err != nil {
					w.failed.Add(1)
					if ctx.Err() == nil {
						time.Sleep(20 * time.Millisecond)
					}
					continue
				}
				w.committed.Add(1)
			}
		}()
	}
	t.Cleanup(w.stop)
	return w
}

func (w *writer) run(ctx context.Context, rnd *rand.Rand) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if err := w.step(ctx, tx, rnd); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// tenantStep is one transaction against createTenant's schema.
func tenantStep(ctx context.Context, tx pgx.Tx, rnd *rand.Rand) error {
	var kunde int64
	if err := tx.QueryRow(ctx, fmt.Sprintf(`INSERT INTO %s (%s, "Größe") VALUES ($1, $2) RETURNING id`, qWeirdTable, qWeirdColumn),
		fmt.Sprintf("neu %d \"'Ö", rnd.IntN(1000)), rnd.IntN(100)).Scan(&kunde); err != nil {
		return err
	}
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO orders (kunde, amount, note) VALUES ($1, $2, $3)`, kunde, rnd.IntN(10000), strings.Repeat("y", rnd.IntN(40)))
	batch.Queue(`UPDATE orders SET amount = amount + 1, note = note || 'u' WHERE id = (SELECT max(id) FROM orders) - $1`, rnd.IntN(500))
	batch.Queue(`DELETE FROM orders WHERE id = (SELECT max(id) FROM orders) - $1`, 100+rnd.IntN(500))
	batch.Queue(fmt.Sprintf(`UPDATE %s SET "Größe" = "Größe" + 1 WHERE id = $1`, qWeirdTable), 1+rnd.IntN(50))
	batch.Queue(`INSERT INTO events VALUES (nextval('standalone_seq'), date '2026-02-01' + $1::int, '{"w":1}') ON CONFLICT DO NOTHING`, rnd.IntN(300))
	batch.Queue(`DELETE FROM events WHERE id = $1`, rnd.IntN(2000))
	return tx.SendBatch(ctx, batch).Close()
}

// stop ends the writes: the test's fence. Every committed transaction
// is acknowledged when it returns.
func (w *writer) stop() {
	w.cancel()
	w.wg.Wait()
	w.pool.Close()
}

// sequences returns every sequence's value and is_called.
func sequences(t testing.TB, inst *localpg.Instance, db string) map[string]string {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	conn, err := inst.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		var v int64
		var called bool
		if err := conn.QueryRow(ctx, "SELECT last_value, is_called FROM "+n).Scan(&v, &called); err != nil {
			t.Fatal(err)
		}
		out[n] = fmt.Sprint(v, called)
	}
	return out
}

func isErr(err, target error) bool { return errors.Is(err, target) }
