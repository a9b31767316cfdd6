package logical_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// envInt reads a positive integer from the environment, or def.
func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q is not a positive number", name, s)
	}
	return n
}

// copyShape is a tenant of a given shape and size.
type copyShape struct {
	name  string
	build func(b *testing.B, inst *localpg.Instance, db string, mb int)
}

var copyShapes = []copyShape{
	{"one-table", buildPgbenchTenant},
	{"200-tables", buildManyTablesTenant},
}

// buildPgbenchTenant is pgbench's schema at the scale that makes about mb
// MB (scale 1 is about 16 MB with its indexes): one large table,
// pgbench_accounts, and three small ones. pgbench_history has no key: it
// gets REPLICA IDENTITY FULL, which every tool copies alike.
func buildPgbenchTenant(b *testing.B, inst *localpg.Instance, db string, mb int) {
	localpgtest.CreateDatabase(b, inst, db)
	scale := max(1, (mb*60+500)/1000)
	run(b, filepath.Join(inst.BinDir(), "pgbench"), "-i", "-q", "-s", strconv.Itoa(scale), inst.ConnString(db))
	execSQL(b, inst, db, `ALTER TABLE pgbench_history REPLICA IDENTITY FULL`, `VACUUM ANALYZE`)
}

// buildManyTablesTenant spreads about mb MB over 200 tables, each with a
// primary key and a secondary index.
func buildManyTablesTenant(b *testing.B, inst *localpg.Instance, db string, mb int) {
	localpgtest.CreateDatabase(b, inst, db)
	rows := max(10, mb*1_000_000/200/150) // about 150 bytes a row with its indexes
	// A table at a time: execSQL gives its statements a minute.
	for i := range 200 {
		execSQL(b, inst, db,
			fmt.Sprintf(`CREATE TABLE t%03d (id bigint PRIMARY KEY, a int NOT NULL, b text, c timestamptz NOT NULL)`, i),
			fmt.Sprintf(`INSERT INTO t%03d SELECT g, (random() * 1e6)::int, md5(g::text) || md5((g + %d)::text), now() - g * interval '1 second'
				FROM generate_series(1, %d) g`, i, i, rows),
			fmt.Sprintf(`CREATE INDEX ON t%03d (a)`, i))
	}
	execSQL(b, inst, db, `VACUUM ANALYZE`)
}

// BenchmarkInitialCopy measures, for two shapes of tenant of the same
// size (one large table: pgbench; 200 tables), the time until a target
// is ready for the window, from the same source into the same target
// instance, the tools alternating (each round starts with the next one):
//
//   - daisychain: Start until the stream streams (every index and
//     constraint built) and has applied a barrier taken then;
//   - pgcopydb clone --table-jobs N --index-jobs N (when installed);
//   - pg_dump -Fd -j N -Z0 followed by pg_restore -j N.
//
// N is the number of CPUs. Each target database is dropped after its run,
// and both servers checkpointed. Each run, then each tool's median, min
// and max with its command, are printed on stdout (the testing log of a
// benchmark keeps only its first lines). The size, rounds and copy sessions come
// from the environment, so that go test (which runs no benchmark) is
// unaffected:
//
//	DAISYCHAIN_BENCH_COPY_MB=1000 DAISYCHAIN_BENCH_ROUNDS=3 go test ./replica/logical -run '^$' -bench BenchmarkInitialCopy -benchtime 1x -timeout 3h
//
// DAISYCHAIN_BENCH_COPY_MB is the tenant's size (default 100);
// DAISYCHAIN_BENCH_ROUNDS the runs of each tool per shape (default 2);
// DAISYCHAIN_BENCH_COPY_JOBS sets Provider.CopyJobs (default: its
// default); DAISYCHAIN_BENCH_RANGE_MB sets Provider.CopyRangeSize in MB;
// DAISYCHAIN_BENCH_LOG=1 prints the stream's log;
// DAISYCHAIN_BENCH_ONLY=daisychain,pgcopydb runs only the tools named.
func BenchmarkInitialCopy(b *testing.B) {
	mb := envInt(b, "DAISYCHAIN_BENCH_COPY_MB", 100)
	rounds := envInt(b, "DAISYCHAIN_BENCH_ROUNDS", 2)
	copyJobs := envInt(b, "DAISYCHAIN_BENCH_COPY_JOBS", logical.CopyJobsDefault)
	settings := map[string]string{"shared_buffers": "256MB", "max_wal_size": "4GB", "checkpoint_timeout": "30min"}
	src := localpgtest.Start(b, &localpg.Config{Name: "src", Settings: settings})
	dst := localpgtest.Start(b, &localpg.Config{Name: "dst", Settings: settings})
	binDir := src.BinDir()
	jobs := runtime.NumCPU()
	n := strconv.Itoa(jobs)
	pgcopydb, _ := exec.LookPath("pgcopydb")
	rangeMB := envInt(b, "DAISYCHAIN_BENCH_RANGE_MB", logical.CopyRangeSizeDefault>>20)
	p := &logical.Provider{BinDir: binDir, Jobs: jobs, CopyJobs: copyJobs, CopyRangeSize: int64(rangeMB) << 20, PollInterval: 50 * time.Millisecond}

	for _, shape := range copyShapes {
		b.Run(shape.name, func(b *testing.B) {
			db := "tenant_" + strings.ReplaceAll(shape.name, "-", "_")
			t0 := time.Now()
			shape.build(b, src, db, mb)
			size := queryInt(b, src, db, `SELECT pg_database_size(current_database())`)
			fmt.Printf("%s: %.0f MB (with indexes), built in %s\n", shape.name, float64(size)/1e6, time.Since(t0).Round(time.Second))

			type tool struct {
				name, command string
				run           func(target string) time.Duration
			}
			tools := []tool{
				{"daisychain", fmt.Sprintf("Provider{Jobs: %d, CopyJobs: %d, CopyRangeSize: %d MB}.Start, until streaming and a barrier applied", jobs, copyJobs, rangeMB),
					func(target string) time.Duration {
						return daisychainCopy(b, p, src, db, dst, target)
					}},
				{"pg_dump+pg_restore", fmt.Sprintf("pg_dump -Fd -j %s -Z0 -f DIR SOURCE && pg_restore -j %s --exit-on-error -d TARGET DIR", n, n),
					func(target string) time.Duration {
						dir := filepath.Join(b.TempDir(), "dump")
						localpgtest.CreateDatabase(b, dst, target)
						t0 := time.Now()
						run(b, filepath.Join(binDir, "pg_dump"), "-Fd", "-j", n, "-Z0", "-f", dir, "--dbname="+src.ConnString(db))
						run(b, filepath.Join(binDir, "pg_restore"), "-j", n, "--exit-on-error", "--dbname="+dst.ConnString(target), dir)
						return time.Since(t0)
					}},
			}
			if pgcopydb != "" {
				tools = append(tools, tool{"pgcopydb", fmt.Sprintf("pgcopydb clone --source SOURCE --target TARGET --dir DIR --table-jobs %s --index-jobs %s", n, n),
					func(target string) time.Duration {
						localpgtest.CreateDatabase(b, dst, target)
						t0 := time.Now()
						run(b, pgcopydb, "clone", "--source", src.ConnString(db), "--target", dst.ConnString(target),
							"--dir", filepath.Join(b.TempDir(), "pgcopydb"), "--table-jobs", n, "--index-jobs", n)
						return time.Since(t0)
					}})
			} else {
				b.Logf("pgcopydb not installed (apt-get install pgcopydb): that baseline is skipped")
			}
			if only := os.Getenv("DAISYCHAIN_BENCH_ONLY"); only != "" {
				tools = slices.DeleteFunc(tools, func(t tool) bool { return !slices.Contains(strings.Split(only, ","), t.name) })
			}
			times := map[string][]time.Duration{}
			for r := range rounds {
				for k := range tools {
					tl := tools[(r+k)%len(tools)]
					target := fmt.Sprintf("%s_%d_%d", db, r, (r+k)%len(tools))
					d := tl.run(target)
					times[tl.name] = append(times[tl.name], d)
					fmt.Printf("%s round %d: %-18s %s\n", shape.name, r+1, tl.name, d.Round(10*time.Millisecond))
					execSQL(b, dst, "postgres", `DROP DATABASE `+pgx.Identifier{target}.Sanitize()+` WITH (FORCE)`, `CHECKPOINT`)
					execSQL(b, src, "postgres", `CHECKPOINT`)
				}
			}
			var lines []string
			for _, tl := range tools {
				ts := slices.Clone(times[tl.name])
				slices.Sort(ts)
				med := ts[len(ts)/2]
				lines = append(lines, fmt.Sprintf("%-18s median %6.2f s, min %6.2f s, max %6.2f s   %s",
					tl.name, med.Seconds(), ts[0].Seconds(), ts[len(ts)-1].Seconds(), tl.command))
				b.ReportMetric(med.Seconds(), tl.name+"-s")
			}
			fmt.Printf("%s, %.0f MB, %d rounds, N=%d:\n%s\n", shape.name, float64(size)/1e6, rounds, jobs, strings.Join(lines, "\n"))
			median := func(name string) float64 {
				ts := slices.Clone(times[name])
				slices.Sort(ts)
				return ts[len(ts)/2].Seconds()
			}
			if len(times["pgcopydb"]) > 0 && len(times["daisychain"]) > 0 {
				r := median("daisychain") / median("pgcopydb")
				b.ReportMetric(r, "daisychain/pgcopydb")
				fmt.Printf("%s: daisychain / pgcopydb = %.2f (goal: at most 0.8)\n", shape.name, r)
			}
			if len(times["pg_dump+pg_restore"]) > 0 && len(times["daisychain"]) > 0 {
				b.ReportMetric(median("daisychain")/median("pg_dump+pg_restore"), "daisychain/pg_dump+pg_restore")
			}
		})
	}
}

// daisychainCopy streams db into target and returns the time until the
// target is ready for the window; then it finishes the stream.
func daisychainCopy(b *testing.B, p *logical.Provider, src *localpg.Instance, db string, dst *localpg.Instance, target string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	t0 := time.Now()
	sp := replica.Spec{ID: "bench-" + target, Source: src.ConnString("postgres"), SourceDatabase: db,
		Target: dst.ConnString("postgres"), TargetDatabase: target}
	if os.Getenv("DAISYCHAIN_BENCH_LOG") != "" {
		sp.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	st, err := p.Start(ctx, sp)
	if err != nil {
		b.Fatal(err)
	}
	for {
		pr, err := st.Progress(ctx)
		if err != nil || pr.Err != nil {
			b.Fatal(err, pr.Err)
		}
		if pr.Phase == replica.PhaseStreaming {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pos, err := st.Barrier(ctx)
	if err == nil {
		err = st.WaitFor(ctx, pos)
	}
	if err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	if err := st.Finish(ctx); err != nil {
		b.Fatal(err)
	}
	return d
}
