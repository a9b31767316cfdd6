package logical_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// benchMB is the tenant's size: DAISYCHAIN_BENCH_MB, default 50 (the
// issue's "few hundred MB": DAISYCHAIN_BENCH_MB=300).
func benchMB(b *testing.B) int {
	if s := os.Getenv("DAISYCHAIN_BENCH_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("DAISYCHAIN_BENCH_MB=%q is not a positive number", s)
		}
		return n
	}
	return 50
}

// buildBenchTenant fills db with about mb MB: two large tables with
// secondary indexes, and several small ones.
func buildBenchTenant(b *testing.B, inst *localpg.Instance, db string, mb int) {
	localpgtest.CreateDatabase(b, inst, db)
	big1 := mb * 1_000_000 * 6 / 10 / 170 // about 170 bytes a row on disk
	big2 := mb * 1_000_000 * 3 / 10 / 260
	sqls := []string{
		`CREATE TABLE big1 (id bigserial PRIMARY KEY, a int NOT NULL, b text, c timestamptz NOT NULL)`,
		fmt.Sprintf(`INSERT INTO big1 (a, b, c) SELECT (random() * 1e6)::int, md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text),
			now() - i * interval '1 second' FROM generate_series(1, %d) i`, big1),
		`CREATE INDEX big1_a ON big1 (a)`,
		`CREATE INDEX big1_c ON big1 (c)`,
		`CREATE TABLE big2 (id int PRIMARY KEY, ref bigint REFERENCES big1 (id), payload text)`,
		fmt.Sprintf(`INSERT INTO big2 SELECT i, 1 + i %% %d, repeat(md5(i::text), 6) FROM generate_series(1, %d) i`, big1, big2),
		`CREATE INDEX big2_ref ON big2 (ref)`,
	}
	for t := range 6 {
		sqls = append(sqls,
			fmt.Sprintf(`CREATE TABLE small%d (id int PRIMARY KEY, name text UNIQUE, v numeric)`, t),
			fmt.Sprintf(`INSERT INTO small%d SELECT i, 'n' || i, i / 3.0 FROM generate_series(1, %d) i`, t, 20000),
		)
	}
	sqls = append(sqls, `VACUUM ANALYZE`)
	execSQL(b, inst, db, sqls...)
}

// BenchmarkCopy compares, on the same tenant in the same run, the time
// until a stream is caught up (while the source takes writes) with
// pg_dump -Fc + pg_restore -j into a fresh database, and with pgcopydb
// clone when it is installed. It also measures what Verify costs per GB.
//
//	go test ./replica/logical -run '^$' -bench BenchmarkCopy -benchtime 1x
//	DAISYCHAIN_BENCH_MB=300 go test ./replica/logical -run '^$' -bench BenchmarkCopy -benchtime 1x -timeout 1h
func BenchmarkCopy(b *testing.B) {
	mb := benchMB(b)
	src := localpgtest.Start(b, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(b, &localpg.Config{Name: "dst"})
	t0 := time.Now()
	buildBenchTenant(b, src, "tenant", mb)
	dataBytes := queryInt(b, src, "tenant", `SELECT sum(pg_table_size(c.oid))::int8 FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'`)
	dbBytes := queryInt(b, src, "tenant", `SELECT pg_database_size(current_database())`)
	b.Logf("tenant built in %s: tables %.0f MB, database %.0f MB (indexes included)",
		time.Since(t0).Round(time.Millisecond), float64(dataBytes)/1e6, float64(dbBytes)/1e6)
	binDir := src.BinDir()
	jobs := min(runtime.NumCPU(), 8)
	p := &logical.Provider{BinDir: binDir, PollInterval: 100 * time.Millisecond}

	for i := range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()

		// 1. The stream, with writes on the source meanwhile.
		w := startWriterFunc(b, src, "tenant", 1, benchStep)
		t0 := time.Now()
		st, err := p.Start(ctx, replica.Spec{ID: fmt.Sprintf("bench-%d", i), Source: src.ConnString("postgres"),
			SourceDatabase: "tenant", Target: dst.ConnString("postgres"), TargetDatabase: fmt.Sprintf("stream_%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		started := time.Since(t0)
		var copied time.Duration
		for {
			pr, err := st.Progress(ctx)
			if err != nil || pr.Err != nil {
				b.Fatal(err, pr.Err)
			}
			if pr.Phase == replica.PhaseIndexes && copied == 0 {
				copied = time.Since(t0)
			}
			if pr.Phase == replica.PhaseStreaming {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		complete := time.Since(t0)
		pos, err := st.Barrier(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.WaitFor(ctx, pos); err != nil {
			b.Fatal(err)
		}
		streamTime := time.Since(t0)
		w.stop()
		t1 := time.Now()
		pos, _ = st.Barrier(ctx)
		if err := st.WaitFor(ctx, pos); err != nil {
			b.Fatal(err)
		}
		fenceWait := time.Since(t1)
		var verify [3]time.Duration
		for _, level := range []replica.VerifyLevel{replica.VerifyCounts, replica.VerifyChecksums} {
			t := time.Now()
			if err := st.Verify(ctx, level); err != nil {
				b.Fatal(err)
			}
			verify[level] = time.Since(t)
		}
		if err := st.Finish(ctx); err != nil {
			b.Fatal(err)
		}
		b.Logf("stream: started in %s, data copied at %s, indexes built at %s, caught up at %s (%d writes meanwhile); barrier wait after the fence %s",
			started.Round(time.Millisecond), copied.Round(time.Millisecond), complete.Round(time.Millisecond),
			streamTime.Round(time.Millisecond), w.committed.Load(), fenceWait.Round(time.Millisecond))
		gb := float64(dataBytes) / 1e9
		b.Logf("verify: counts %s (%.2f s/GB), checksums %s (%.2f s/GB) of table data, source and target read in parallel",
			verify[replica.VerifyCounts].Round(time.Millisecond), verify[replica.VerifyCounts].Seconds()/gb,
			verify[replica.VerifyChecksums].Round(time.Millisecond), verify[replica.VerifyChecksums].Seconds()/gb)

		// 2. pg_dump -Fc, then pg_restore -j into a fresh database.
		dir := b.TempDir()
		file := filepath.Join(dir, "tenant.dump")
		t0 = time.Now()
		run(b, filepath.Join(binDir, "pg_dump"), "-Fc", "-f", file, "--dbname="+src.ConnString("tenant"))
		dumped := time.Since(t0)
		restoreDB := fmt.Sprintf("restore_%d", i)
		localpgtest.CreateDatabase(b, dst, restoreDB)
		run(b, filepath.Join(binDir, "pg_restore"), "-j", strconv.Itoa(jobs), "--exit-on-error", "--dbname="+dst.ConnString(restoreDB), file)
		dumpTime := time.Since(t0)
		b.Logf("pg_dump -Fc %s + pg_restore -j %d %s = %s", dumped.Round(time.Millisecond), jobs,
			(dumpTime - dumped).Round(time.Millisecond), dumpTime.Round(time.Millisecond))

		// 3. pgcopydb clone, when installed.
		var copydbTime time.Duration
		if path, err := exec.LookPath("pgcopydb"); err == nil {
			t0 = time.Now()
			copyDB := fmt.Sprintf("pgcopydb_%d", i)
			localpgtest.CreateDatabase(b, dst, copyDB)
			run(b, path, "clone", "--source", src.ConnString("tenant"), "--target", dst.ConnString(copyDB),
				"--dir", filepath.Join(dir, "pgcopydb"), "--table-jobs", strconv.Itoa(jobs), "--index-jobs", strconv.Itoa(jobs))
			copydbTime = time.Since(t0)
			b.Logf("pgcopydb clone: %s", copydbTime.Round(time.Millisecond))
		} else {
			b.Logf("pgcopydb not installed (apt-get install pgcopydb): that baseline is skipped")
		}

		b.ReportMetric(streamTime.Seconds(), "stream-s")
		b.ReportMetric(dumpTime.Seconds(), "dump-restore-s")
		b.ReportMetric(streamTime.Seconds()/dumpTime.Seconds(), "stream/dump-restore")
		b.Logf("ratio stream / (pg_dump + pg_restore) = %.2f", streamTime.Seconds()/dumpTime.Seconds())
		if copydbTime > 0 {
			b.ReportMetric(copydbTime.Seconds(), "pgcopydb-s")
			b.ReportMetric(streamTime.Seconds()/copydbTime.Seconds(), "stream/pgcopydb")
			b.Logf("ratio stream / pgcopydb = %.2f", streamTime.Seconds()/copydbTime.Seconds())
		}
		b.ReportMetric(verify[replica.VerifyCounts].Seconds()/gb, "verify-counts-s/GB")
		b.ReportMetric(verify[replica.VerifyChecksums].Seconds()/gb, "verify-checksums-s/GB")
	}
}

// benchStep is one small transaction against the bench tenant, paced so
// the source keeps taking a steady trickle of writes.
func benchStep(ctx context.Context, tx pgx.Tx, rnd *rand.Rand) error {
	time.Sleep(2 * time.Millisecond)
	batch := &pgx.Batch{}
	batch.Queue(`UPDATE big2 SET payload = md5(random()::text) WHERE id = $1`, 1+rnd.IntN(1000))
	batch.Queue(`INSERT INTO small0 (id, name, v) VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET v = small0.v + 1`,
		100000+rnd.IntN(100000), fmt.Sprint("w", rnd.Int64()))
	batch.Queue(`DELETE FROM small1 WHERE id = $1`, 1+rnd.IntN(20000))
	return tx.SendBatch(ctx, batch).Close()
}

func run(b *testing.B, prog string, args ...string) {
	b.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", filepath.Base(prog), err, out)
	}
}
