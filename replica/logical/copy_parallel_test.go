package logical_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// createCopyTenant fills db with the tables the stream's own copy must
// get right: a large table split into ranges (a dropped column, a
// generated one, an enum, an array, a domain), one without a primary key
// (no key to split by: split by blocks all the same), one of a single
// page, an empty one, one whose types have no binary I/O (aclitem, a
// composite: copied as text), an inheritance parent and child (the
// parent's copy must not take the child's rows), and hot, which the
// writer changes (a primary key and a unique key).
func createCopyTenant(t testing.TB, inst *localpg.Instance, db string, bigRows int) {
	t.Helper()
	localpgtest.CreateDatabase(t, inst, db)
	execSQL(t, inst, db,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TYPE pair AS (a int, b text)`,
		`CREATE DOMAIN posint AS int CHECK (VALUE > 0)`,
		`CREATE TABLE big (id bigint PRIMARY KEY, v text, doomed int, m mood, tags text[], d posint,
			g bigint GENERATED ALWAYS AS (id * 2) STORED)`,
		`ALTER TABLE big DROP COLUMN doomed`,
		fmt.Sprintf(`INSERT INTO big (id, v, m, tags, d) SELECT i, repeat(md5(i::text), 3), (ARRAY['sad', 'ok', 'happy']::mood[])[1 + i %% 3],
			ARRAY['t' || i, NULL], 1 + i %% 100 FROM generate_series(1, %d) i`, bigRows),
		`CREATE TABLE nokey (a int, b text)`,
		`ALTER TABLE nokey REPLICA IDENTITY FULL`,
		fmt.Sprintf(`INSERT INTO nokey SELECT i %% 500, md5(i::text) FROM generate_series(1, %d) i`, bigRows/2),
		`CREATE TABLE onepage (id int PRIMARY KEY, x text)`,
		`INSERT INTO onepage SELECT i, 'x' || i FROM generate_series(1, 5) i`,
		`CREATE TABLE empty (id int PRIMARY KEY)`,
		`CREATE TABLE textonly (id int PRIMARY KEY, acl aclitem[], p pair)`,
		`INSERT INTO textonly SELECT i, ARRAY[makeaclitem('postgres'::regrole, 'postgres'::regrole, 'SELECT', i % 2 = 0)], ROW(i, 'p' || i)::pair
			FROM generate_series(1, 300) i`,
		`CREATE TABLE parent (id int PRIMARY KEY, x text)`,
		`CREATE TABLE child (extra text) INHERITS (parent)`,
		`ALTER TABLE child ADD PRIMARY KEY (id)`,
		`INSERT INTO parent SELECT i, repeat(md5(i::text), 3) FROM generate_series(1, 1000) i`,
		`INSERT INTO child SELECT i, repeat(md5(i::text), 3), 'e' FROM generate_series(1001, 2000) i`,
		`CREATE TABLE hot (k int PRIMARY KEY, u int NOT NULL UNIQUE, v text)`,
		`INSERT INTO hot SELECT i, i, 'v' FROM generate_series(1, 2000) i`,
		`VACUUM ANALYZE`,
	)
}

// copyTenantStep is one transaction against createCopyTenant's schema:
// inserts, updates (the unique key too) and deletes on hot, big and
// nokey.
func copyTenantStep(ctx context.Context, tx pgx.Tx, rnd *rand.Rand) error {
	k := 1 + rnd.IntN(3000)
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO hot VALUES ($1, $1, 'new') ON CONFLICT (k) DO UPDATE SET v = hot.v || 'u'`, k)
	batch.Queue(`UPDATE hot SET u = -u, v = v || 'f' WHERE k = $1`, 1+rnd.IntN(3000))
	batch.Queue(`DELETE FROM hot WHERE k = $1`, 1+rnd.IntN(3000))
	batch.Queue(`UPDATE big SET v = 'changed' || $1 WHERE id = $1`, 1+rnd.IntN(20000))
	batch.Queue(`DELETE FROM big WHERE id = $1`, 1+rnd.IntN(20000))
	batch.Queue(`INSERT INTO big (id, v, m, d) VALUES (100000 + $1, 'late', 'ok', 7) ON CONFLICT DO NOTHING`, rnd.IntN(100000))
	batch.Queue(`DELETE FROM nokey WHERE ctid = (SELECT ctid FROM nokey WHERE a = $1 LIMIT 1)`, rnd.IntN(500))
	batch.Queue(`INSERT INTO nokey VALUES ($1, 'late')`, rnd.IntN(500))
	return tx.SendBatch(ctx, batch).Close()
}

// logBuffer is a slog handler's destination that tests read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// The stream's own copy, in several sessions and in ranges of the large
// tables, while the source takes inserts, updates and deletes: once
// caught up and fenced, every table has the source's rows (no row
// missed, none applied twice: hot's unique keys are built on the target
// after the copy, and the checksums match), and Progress counted every
// table and byte.
func TestOwnCopyRowsIdentical(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createCopyTenant(t, src, "t", 20000)
	logs := &logBuffer{}
	p := &logical.Provider{PollInterval: 100 * time.Millisecond, CopyJobs: 3, CopyRangeSize: 64 << 10}
	sp := spec("own-copy", src, "t", dst, "t")
	sp.Logger = slog.New(slog.NewTextHandler(logs, nil))

	w := startWriterFunc(t, src, "t", 2, copyTenantStep)
	ctx := testCtx(t, 3*time.Minute)
	for w.committed.Load() < 20 {
		time.Sleep(10 * time.Millisecond)
	}
	before := w.committed.Load()
	st := startStreamingWith(t, p, sp)
	during := w.committed.Load() - before
	pr, err := st.Progress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// pub: big, nokey, onepage, empty, textonly, parent, child, hot.
	if pr.TablesTotal != 8 || pr.TablesDone != 8 || pr.BytesTotal == 0 || pr.BytesCopied != pr.BytesTotal {
		t.Errorf("progress after the copy: %+v, want 8 of 8 tables and every byte", pr)
	}
	catchUp(t, st, time.Minute)
	w.stop()
	catchUp(t, st, time.Minute)
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	const counts = `SELECT (SELECT count(*) FROM ONLY parent) || ' ' || (SELECT count(*) FROM child) || ' ' ||
		(SELECT count(*) FROM empty) || ' ' || (SELECT count(*) FROM onepage) || ' ' || (SELECT sum(g) FROM big)`
	if s, d := queryValue[string](t, src, "t", counts), queryValue[string](t, dst, "t", counts); s != d {
		t.Errorf("counts: source %s, target %s", s, d)
	}
	m := regexp.MustCompile(`initial copy done" stream=\S+ tables=(\d+) ranges=(\d+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no log of the copy:\n%s", logs)
	}
	if tables, ranges := atoi(t, m[1]), atoi(t, m[2]); tables != 8 || ranges < tables+20 {
		t.Errorf("copied %d tables in %d ranges, want 8 tables, big and nokey split in many ranges", tables, ranges)
	}
	if during == 0 {
		t.Error("no write committed while the stream started and copied")
	}
	t.Logf("%d transactions while the stream started and copied, %d in all", during, w.committed.Load())
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// killedCopyEnv carries killedCopy to TestOwnCopyKillChild.
const killedCopyEnv = "DAISYCHAIN_TEST_KILLED_COPY"

type killedCopy struct {
	Spec replica.Spec
}

// killedCopyProvider copies in one session, a range of one block at a
// time: a copy slow enough to be killed in the middle.
var killedCopyProvider = &logical.Provider{PollInterval: 100 * time.Millisecond, CopyJobs: 1, CopyRangeSize: 8 << 10}

// TestOwnCopyKillChild starts the stream in the process
// TestOwnCopyResumeAfterKill starts, and says when the copy is under way
// (some bytes copied, not every table), to be killed there.
func TestOwnCopyKillChild(t *testing.T) {
	var c killedCopy
	if !cutovertest.ChildArg(t, killedCopyEnv, &c) {
		t.Skip("the child of TestOwnCopyResumeAfterKill: it runs in the process that test starts")
	}
	ctx := context.Background()
	st, err := killedCopyProvider.Start(ctx, c.Spec)
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := st.Progress(ctx)
		if err != nil || p.Err != nil {
			t.Fatal(err, p.Err)
		}
		if p.Phase != replica.PhaseCopy {
			t.Fatalf("the copy ended before the child was killed: %+v", p)
		}
		if p.BytesCopied > 0 && p.TablesDone < p.TablesTotal {
			cutovertest.Reached(fmt.Sprintf("copy: %d of %d bytes", p.BytesCopied, p.BytesTotal))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A process killed in the middle of the copy: the stream resumed by
// another process starts the copy over from a new slot (the exported
// snapshot died with the process), on truncated tables, and ends with
// the source's rows, while the source took writes throughout, and one
// slot on the source, which Finish drops.
func TestOwnCopyResumeAfterKill(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createCopyTenant(t, src, "t", 20000)
	sp := spec("killed-copy", src, "t", dst, "t")
	w := startWriterFunc(t, src, "t", 1, copyTenantStep)
	cutovertest.KillChildAt(t, "TestOwnCopyKillChild", killedCopyEnv, killedCopy{Spec: sp})

	// Killed mid-copy: part of big is on the target.
	if n := queryInt(t, dst, "t", `SELECT count(*) FROM big`); n == 0 || n >= queryInt(t, src, "t", `SELECT count(*) FROM big`) {
		t.Fatalf("the child was killed with %d rows of big copied: not in the middle of the copy", n)
	}
	ctx := testCtx(t, 3*time.Minute)
	st := startStreamingWith(t, killedCopyProvider, sp)
	catchUp(t, st, time.Minute)
	w.stop()
	catchUp(t, st, time.Minute)
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_replication_slots`); n != 1 {
		t.Errorf("%d slots on the source, want the stream's one", n)
	}
	var m struct {
		CopyAttempts int `json:"copy_attempts"`
	}
	marker := queryValue[string](t, dst, "postgres", `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 't'`)
	if err := json.Unmarshal([]byte(marker), &m); err != nil || m.CopyAttempts != 2 {
		t.Errorf("marker %s (%v): want copy_attempts 2", marker, err)
	}
	if err := st.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, "t")
	assertNoReplicationObjects(t, dst, "t")
}

// TestOwnCopyFreezesWholeTables: a table copied whole is loaded with COPY
// FREEZE, so its rows arrive frozen and its pages all-frozen in the
// visibility map: the target's first anti-wraparound vacuum has nothing
// to rewrite. A table copied in ranges is not (COPY FREEZE needs the
// table truncated in the same transaction).
func TestOwnCopyFreezesWholeTables(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createCopyTenant(t, src, "t", 20000)
	// big (4 MB) is split into ranges of 1 MB; every other table is
	// copied whole.
	p := &logical.Provider{PollInterval: 100 * time.Millisecond, CopyJobs: 2, CopyRangeSize: 1 << 20}
	st := startStreamingWith(t, p, spec("freeze", src, "t", dst, "t"))
	catchUp(t, st, time.Minute)
	ctx := testCtx(t, time.Minute)
	if err := st.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := dst.Connect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_visibility"); err != nil {
		t.Skipf("pg_visibility (PostgreSQL's contrib) is not installed: %v", err)
	}
	rows, err := conn.Query(ctx, `SELECT c.relname, (pg_visibility_map_summary(c.oid)).all_frozen, pg_relation_size(c.oid) / current_setting('block_size')::int
		FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type table struct {
		Name          string
		Frozen, Pages int64
	}
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[table])
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, tb := range tables {
		switch {
		case tb.Pages == 0:
		case tb.Name == "big":
			if tb.Frozen == tb.Pages {
				t.Errorf("big, copied in ranges, has all its %d pages frozen: was it copied whole?", tb.Pages)
			}
		case tb.Frozen != tb.Pages:
			t.Errorf("%s: %d of %d pages all-frozen after its COPY FREEZE", tb.Name, tb.Frozen, tb.Pages)
		default:
			checked++
		}
	}
	if checked < 4 {
		t.Errorf("only %d tables copied whole were checked: %+v", checked, tables)
	}
}
