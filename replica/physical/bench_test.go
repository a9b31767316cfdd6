package physical_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/physical"
)

// benchMB is the source's tenant data: DAISYCHAIN_BENCH_MB, default 50
// (the "few hundred MB": DAISYCHAIN_BENCH_MB=300).
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

// BenchmarkConvert compares, on the same source in the same run and under
// the same writes, a plain pg_basebackup (-X stream, fast checkpoint, no
// sync) with the converter's
// Start until the replica streams (preflight, slot, the same base backup,
// the standby's start) and until it has caught up, and measures the
// cutover: Barrier + WaitFor, and Promote.
//
//	go test ./replica/physical -run '^$' -bench BenchmarkConvert -benchtime 1x
//	DAISYCHAIN_BENCH_MB=300 go test ./replica/physical -run '^$' -bench BenchmarkConvert -benchtime 1x -timeout 1h
func BenchmarkConvert(b *testing.B) {
	mb := benchMB(b)
	ctx := testCtx(b, time.Hour)
	src := localpgtest.Start(b, &localpg.Config{Name: "src", Password: "bench"})
	t0 := time.Now()
	const tenants = 4
	for i := range tenants {
		db := fmt.Sprintf("tenant_%d", i)
		newTenant(b, src, db, mb*1_000_000/tenants/200) // about 200 bytes a row with its index
	}
	execSQL(b, src.ConnString("postgres"), "CHECKPOINT")
	size := queryString(b, src.ConnString("postgres"), `SELECT sum(pg_database_size(oid))::text FROM pg_database`)
	sizeMB, _ := strconv.ParseFloat(size, 64)
	sizeMB /= 1e6
	b.Logf("source built in %s: %.0f MB in all databases", time.Since(t0).Round(time.Millisecond), sizeMB)
	dir := baseDir(b)

	for i := range b.N {
		// 1. The baseline: pg_basebackup alone, as the server's user,
		// under the same trickle of writes to one tenant.
		w0 := startWriter(b, src.ConnString("tenant_0"), "tenant_0")
		target := filepath.Join(dir, fmt.Sprintf("plain-%d", i))
		cmd := src.Command(ctx, "pg_basebackup", "-D", target, "-X", "stream", "--checkpoint=fast", "--no-sync", "-w",
			"-d", src.ConnStringAs(localpg.SuperuserDefault, "", "postgres"))
		cmd.Env = append(os.Environ(), "PGPASSWORD=bench")
		// The server's user creates the target, as in /tmp.
		if err := os.Chmod(dir, 0o1777); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pg_basebackup: %v\n%s", err, out)
		}
		plain := time.Since(t0)
		w0.stop()
		if err := os.RemoveAll(target); err != nil {
			b.Fatal(err)
		}

		// 2. The converter, under the same writes.
		w := startWriter(b, src.ConnString("tenant_0"), "tenant_0")
		conv := &physical.Converter{Replica: localpg.Config{BaseDir: dir}}
		t0 = time.Now()
		st, err := conv.Start(ctx, replica.ConvertSpec{ID: fmt.Sprintf("bench-%d", i), Source: src.ConnString("postgres")})
		if err != nil {
			b.Fatal(err)
		}
		started := time.Since(t0)
		var streaming time.Duration
		for streaming == 0 {
			p, err := st.Progress(ctx)
			if err != nil || p.Err != nil {
				b.Fatal(err, p.Err)
			}
			if p.Phase == replica.PhaseStreaming {
				streaming = time.Since(t0)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := waitCaughtUp(ctx, st, 1<<20); err != nil {
			b.Fatal(err)
		}
		caughtUp := time.Since(t0)
		w.stop()
		t1 := time.Now()
		pos, err := st.Barrier(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.WaitFor(ctx, pos); err != nil {
			b.Fatal(err)
		}
		waited := time.Since(t1)
		t2 := time.Now()
		if err := st.Promote(ctx); err != nil {
			b.Fatal(err)
		}
		promoted := time.Since(t2)
		if err := st.(*physical.Conversion).LocalInstance().Close(); err != nil {
			b.Fatal(err)
		}

		b.Logf("source %.0f MB: plain pg_basebackup %s; converter: Start returned in %s, replica streaming at %s, caught up at %s (%d writes meanwhile)",
			sizeMB, plain.Round(time.Millisecond), started.Round(time.Millisecond), streaming.Round(time.Millisecond),
			caughtUp.Round(time.Millisecond), w.n.Load())
		b.Logf("cutover: Barrier + WaitFor %s, Promote %s; ratio converter streaming / plain pg_basebackup = %.2f",
			waited.Round(time.Millisecond), promoted.Round(time.Millisecond), streaming.Seconds()/plain.Seconds())
		b.ReportMetric(plain.Seconds(), "pg_basebackup-s")
		b.ReportMetric(streaming.Seconds(), "convert-streaming-s")
		b.ReportMetric(streaming.Seconds()/plain.Seconds(), "convert/pg_basebackup")
		b.ReportMetric(float64(waited.Milliseconds()), "barrier-wait-ms")
		b.ReportMetric(float64(promoted.Milliseconds()), "promote-ms")
	}
}
