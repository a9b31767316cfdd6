package physical_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
)

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// baseDir is a directory for the replicas of one test, which the
// server's system user can enter when the tests run as root.
func baseDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "physical-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func execSQL(t testing.TB, connString string, sqls ...string) {
	t.Helper()
	ctx := testCtx(t, 5*time.Minute)
	conn, err := pgx.Connect(ctx, connString)
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

func queryString(t testing.TB, connString, q string, args ...any) string {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s *string
	if err := conn.QueryRow(ctx, q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if s == nil {
		return "<null>"
	}
	return *s
}

// withDatabase replaces the database of a URL connection string.
func withDatabase(connString, db string) string {
	u, err := url.Parse(connString)
	if err != nil {
		panic("withDatabase: not a URL")
	}
	u.Path = "/" + db
	return u.String()
}

// slots lists the replication slots on inst.
func slots(t testing.TB, inst *localpg.Instance) string {
	return queryString(t, inst.ConnString("postgres"), `SELECT coalesce(string_agg(slot_name, ','), '') FROM pg_replication_slots`)
}

// processesUnder lists the processes whose command line mentions dir
// (pg_basebackup -D, postgres -D).
func processesUnder(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// assertNothingLeft checks that no slot is on src, nothing is in dir and
// no process runs from it.
func assertNothingLeft(t testing.TB, src *localpg.Instance, dir string) {
	t.Helper()
	if s := slots(t, src); s != "" {
		t.Errorf("slots left on the source: %s", s)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d entries left in %s", len(entries), dir)
	}
	if p := processesUnder(dir); len(p) != 0 {
		t.Errorf("processes left: %v", p)
	}
}

// waitCaughtUp polls Progress until the replica streams with less than
// maxLag bytes to replay.
func waitCaughtUp(ctx context.Context, cv replica.Conversion, maxLag int64) error {
	for {
		p, err := cv.Progress(ctx)
		if err == nil && p.Err != nil {
			err = p.Err
		}
		if err != nil {
			return err
		}
		if p.Phase == replica.PhaseStreaming && p.LagBytes <= maxLag {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not caught up (%+v): %w", p, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// writer inserts rows into table acked of one database, one transaction
// each, and keeps the IDs the server acknowledged, until it is stopped or
// its session is ended (by a fence).
type writer struct {
	db     string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	acked  []int64
	n      atomic.Int64
	err    error // the error that ended it, other than a stop
}

func startWriter(t testing.TB, connString, db string) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{db: db, cancel: cancel, done: make(chan struct{})}
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			var id int64
			err := conn.QueryRow(ctx, `WITH c AS (UPDATE counter SET n = n + 1 RETURNING n)
				INSERT INTO acked (n, payload) SELECT n, md5(n::text) FROM c RETURNING id`).Scan(&id)
			if err != nil {
				if ctx.Err() == nil {
					w.err = err
				}
				return
			}
			w.mu.Lock()
			w.acked = append(w.acked, id)
			w.mu.Unlock()
			w.n.Add(1)
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *writer) stop() {
	w.cancel()
	<-w.done
}

// waitEnded waits until the writer's session was ended.
func (w *writer) waitEnded(ctx context.Context) error {
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return errors.New("writer of " + w.db + " still running after the fence")
	}
}

func newTenant(t testing.TB, src *localpg.Instance, db string, rows int) {
	t.Helper()
	if err := src.CreateDatabase(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	execSQL(t, src.ConnString(db),
		`CREATE TABLE counter (n bigint NOT NULL); INSERT INTO counter VALUES (0)`,
		`CREATE TABLE acked (id bigserial PRIMARY KEY, n bigint NOT NULL, payload text)`,
		fmt.Sprintf(`INSERT INTO acked (n, payload) SELECT -i, repeat(md5(i::text), 4) FROM generate_series(1, %d) i`, rows))
}
