package drain_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/localpg"
)

// tinySchema is a tiny tenant: two tables, seven hundred rows.
const tinySchema = `CREATE TABLE customers (id serial PRIMARY KEY, name text);
	CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total int);
	INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 200) g;
	INSERT INTO orders (customer_id, total) SELECT 1 + g % 200, g FROM generate_series(1, 500) g;`

// BenchmarkDrainRate drains tiny tenants off an instance with a
// drain.Runner at concurrency 1, 2, 4 and 8 (each move retired as a drain
// does), and, in the same run on the same instances, moves as many with
// the plainest alternative a user has: a script that copies each tenant
// with pg_dump | psql, one after the other, its application paused (the
// pause itself, and pointing the application at the copy, are not timed:
// that favours the script). For each it prints tenants per minute and the
// machine's CPU use over the drain; for the Runner, the steps of its
// median move. DAISYCHAIN_DRAIN_RATE_TENANTS sets the tenants per drain
// (default 100).
//
//	go test ./drain -run '^$' -bench DrainRate -benchtime 1x
func BenchmarkDrainRate(b *testing.B) {
	perRound := 100
	if n, err := strconv.Atoi(os.Getenv("DAISYCHAIN_DRAIN_RATE_TENANTS")); err == nil && n > 0 {
		perRound = n
	}
	concurrencies := []int{1, 2, 4, 8}
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	bin, err := localpg.FindBinDir("")
	if err != nil {
		b.Fatal(err)
	}
	// Every drain's tenants, and the script's, up front; one stays, as a
	// threshold of zero tenants would set no limit.
	var ids []string
	for i := range (len(concurrencies)+1)*perRound + 1 {
		ids = append(ids, fmt.Sprintf("t%04d", i))
	}
	if err := f.AddTenantsFromTemplate(ctx, "pg-a", ids, tinySchema); err != nil {
		b.Fatal(err)
	}
	script, pending := ids[1:perRound+1], ids[perRound+1:]
	b.Logf("%d tenants per drain on a %d-CPU machine", perRound, runtime.NumCPU())
	for b.Loop() {
		for _, conc := range concurrencies {
			on, err := f.Catalog.Tenants(ctx, "pg-a")
			if err != nil {
				b.Fatal(err)
			}
			runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Concurrency: conc})
			if err != nil {
				b.Fatal(err)
			}
			// This round's tenants first, and a threshold that moves
			// exactly them.
			round := pending[:perRound]
			pending = pending[perRound:]
			first := func(a, b drain.TenantUsage) int {
				return cmp.Or(-cmp.Compare(boolInt(slices.Contains(round, a.ID)), boolInt(slices.Contains(round, b.ID))), cmp.Compare(a.ID, b.ID))
			}
			cpu := startCPU(b)
			start := time.Now()
			res, err := runner.Drain(ctx, "pg-a", drain.Threshold{MaxTenants: int64(len(on) - perRound)}, &drain.DrainOpts{Order: first})
			if err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			rate := float64(len(res.Moved)) / elapsed.Minutes()
			b.ReportMetric(rate, fmt.Sprintf("tenants/min-c%d", conc))
			b.Logf("drain.Runner, concurrency %d: %d tenants in %s: %.1f tenants/min, CPU %s; median move: %s",
				conc, len(res.Moved), elapsed.Round(time.Millisecond), rate, cpu(), medianMove(res.Moved))
		}
		cpu := startCPU(b)
		start := time.Now()
		for _, id := range script {
			if err := dumpRestore(ctx, bin, f, id); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		rate := float64(len(script)) / elapsed.Minutes()
		b.ReportMetric(rate, "tenants/min-pg_dump")
		b.Logf("pg_dump | psql, one tenant after the other: %d tenants in %s: %.1f tenants/min, CPU %s",
			len(script), elapsed.Round(time.Millisecond), rate, cpu())
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dumpRestore copies tenant id from pg-a to pg-b as a script would:
// createdb, then pg_dump | psql.
func dumpRestore(ctx context.Context, bin string, f *cutovertest.Fleet, id string) error {
	src, dst := f.Instances["pg-a"], f.Instances["pg-b"]
	if err := dst.CreateDatabase(ctx, id+"_dump"); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf(`"$1" -d "$2" | "$3" -q -X -v ON_ERROR_STOP=1 -d "$4" >/dev/null`),
		"sh", filepath.Join(bin, "pg_dump"), src.ConnString(id), filepath.Join(bin, "psql"), dst.ConnString(id+"_dump"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_dump | psql of %s: %v: %s", id, err, out)
	}
	return nil
}

// medianMove is the steps of the median move (by its whole duration).
func medianMove(moved []drain.MoveResult) string {
	if len(moved) == 0 {
		return "none"
	}
	reps := make([]*cutover.Report, 0, len(moved))
	for _, m := range moved {
		reps = append(reps, m.Report)
	}
	slices.SortFunc(reps, func(a, b *cutover.Report) int {
		return cmp.Compare(a.Finished.Sub(a.Started), b.Finished.Sub(b.Started))
	})
	r := reps[len(reps)/2]
	parts := []string{r.Finished.Sub(r.Started).Round(time.Millisecond).String()}
	for _, s := range r.Steps {
		if s.Duration >= 5*time.Millisecond {
			parts = append(parts, fmt.Sprintf("%s %s", s.Step, s.Duration.Round(time.Millisecond)))
		}
	}
	return strings.Join(parts, ", ")
}

// startCPU reads the machine's CPU time and returns a func that says the
// share of it used since, as /proc/stat counts it ("n/a" elsewhere).
func startCPU(b *testing.B) func() string {
	b.Helper()
	busy0, total0, ok := readCPU()
	return func() string {
		busy1, total1, ok1 := readCPU()
		if !ok || !ok1 || total1 <= total0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(busy1-busy0)/float64(total1-total0))
	}
}

// readCPU reads the busy and total jiffies of all CPUs from /proc/stat.
func readCPU() (busy, total int64, ok bool) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, false
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle and iowait
			busy += v
		}
	}
	return busy, total, true
}
