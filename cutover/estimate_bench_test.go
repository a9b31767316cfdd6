package cutover_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/replica"
)

// BenchmarkEstimateAccuracy measures how close the rate model's
// estimates are to what moves take. It rehearses tenants of some sizes
// onto pg-b (the model's samples), then, for tenants of other sizes, dry
// runs a move (the estimate a user sees), moves it, and prints each
// step's estimate beside what the move measured, with the error and
// whether the actual time fell inside the estimate's range. Every tenant
// has an order-entry schema (customers, products, orders, order items,
// an event log with a text column; foreign keys, secondary indexes) and
// is written by an application through the Router (4 writers, 20 ms
// apart) during its rehearsal or move. Goal (issue 14): each total
// within ±20% for tenants of 10 MB to 1 GB on the same machine, and
// each window within ±50%.
//
//	go test ./cutover -run '^$' -bench EstimateAccuracy -benchtime 1x -timeout 1h -v
//
// DAISYCHAIN_BENCH_ESTIMATE_MB sets the rehearsed tenants' sizes in MB of
// data (default "10,100,400"), DAISYCHAIN_BENCH_MOVE_MB the moved ones'
// (default "25,250,1000").
func BenchmarkEstimateAccuracy(b *testing.B) {
	rehearsed := sizesFromEnv(b, "DAISYCHAIN_BENCH_ESTIMATE_MB", []int{10, 100, 400})
	moved := sizesFromEnv(b, "DAISYCHAIN_BENCH_MOVE_MB", []int{25, 250, 1000})
	ctx := context.Background()
	f, mover := startBenchFleet(b)
	const writers, writePause = 4, 20 * time.Millisecond
	underWrites := func(tenant string, run func() error) {
		b.Helper()
		w := cutovertest.StartPacedWorkload(f.Router, tenant, writers, writePause)
		settle(b, func() error { return w.WaitForAcks(ctx, 20) })
		err := run()
		st := w.Stop()
		if err != nil {
			b.Fatal(err)
		}
		if st.Errors != 0 {
			b.Errorf("%s: the application saw %d errors; first: %v", tenant, st.Errors, st.FirstError)
		}
	}
	for b.Loop() {
		// Every tenant exists, checkpointed, before anything is timed:
		// writing back one's creation would slow another's copy.
		for _, mb := range rehearsed {
			addSizedTenant(b, f, fmt.Sprintf("rehearsed_%dmb", mb), mb)
		}
		for _, mb := range moved {
			addSizedTenant(b, f, fmt.Sprintf("moved_%dmb", mb), mb)
		}
		for _, mb := range rehearsed {
			id := fmt.Sprintf("rehearsed_%dmb", mb)
			checkpoint(b, f)
			underWrites(id, func() error {
				rep, err := mover.Rehearse(ctx, cutover.RehearseRequest{ID: id, Tenant: id, Target: "pg-b"})
				if err != nil {
					return fmt.Errorf("rehearse %s: %w\n%s", id, err, rep)
				}
				logMeasurement(b, rep.Measurement)
				return nil
			})
		}
		var table strings.Builder
		fmt.Fprintf(&table, "%-12s %-15s %10s %23s %10s %8s  %s\n", "tenant", "step", "estimate", "range", "actual", "error", "in range")
		worstTotal, worstWindow := 0.0, 0.0
		var missed []string
		for _, mb := range moved {
			id := fmt.Sprintf("moved_%dmb", mb)
			checkpoint(b, f)
			var dry *cutover.DryRunReport
			var rep *cutover.Report
			underWrites(id, func() (err error) {
				if dry, err = mover.DryRun(ctx, cutover.Request{Tenant: id, Target: "pg-b"}); err != nil {
					return err
				}
				if dry.Estimate == nil || len(dry.Problems) > 0 {
					return fmt.Errorf("dry run of %s: no estimate, or problems:\n%s", id, dry)
				}
				b.Logf("%s%s", dry, dry.Estimate)
				if rep, err = mover.Move(ctx, cutover.Request{ID: id, Tenant: id, Target: "pg-b"}); err != nil {
					return fmt.Errorf("move %s: %w\n%s", id, err, rep)
				}
				return nil
			})
			if rep.Measurement == nil {
				b.Fatalf("the move of %s measured nothing:\n%s", id, rep)
			}
			logMeasurement(b, rep.Measurement)
			b.Logf("machine load (1-minute load average, %d cores shared with whatever else runs) after the move of %s: %s",
				runtime.NumCPU(), id, loadAverage())
			if err := mover.Retire(ctx, id); err != nil {
				b.Fatal(err)
			}
			e, m := dry.Estimate, rep.Measurement
			row := func(name string, est, lo, hi, actual time.Duration) float64 {
				errPct := 100 * (est.Seconds() - actual.Seconds()) / math.Max(actual.Seconds(), 1e-6)
				in := "yes"
				if actual < lo || actual > hi {
					in = "no"
				}
				fmt.Fprintf(&table, "%-12s %-15s %10s %23s %10s %+7.0f%%  %s\n", id, name, roundMs(est),
					roundMs(lo).String()+".."+roundMs(hi).String(), roundMs(actual), errPct, in)
				return errPct
			}
			for _, s := range []cutover.Step{cutover.StepPreflight, cutover.StepStream, cutover.StepCatchUp, cutover.StepReversePrepare} {
				se := e.Step(s)
				row(string(s), se.Estimate, se.Low, se.High, m.Step(s))
			}
			windowErr := row("(window)", e.Window, e.WindowLow, e.WindowHigh, m.Window)
			for _, s := range []cutover.Step{cutover.StepCatalog, cutover.StepVerify, cutover.StepFinishStream, cutover.StepReverse} {
				se := e.Step(s)
				row(string(s), se.Estimate, se.Low, se.High, m.Step(s))
			}
			totalErr := row("(total)", e.Total, e.Low, e.High, m.Total)
			worstTotal, worstWindow = math.Max(worstTotal, math.Abs(totalErr)), math.Max(worstWindow, math.Abs(windowErr))
			if math.Abs(totalErr) > 20 {
				missed = append(missed, fmt.Sprintf("%s total %+.0f%%", id, totalErr))
			}
			if math.Abs(windowErr) > 50 {
				missed = append(missed, fmt.Sprintf("%s window %+.0f%%", id, windowErr))
			}
		}
		b.ReportMetric(worstTotal, "worst-total-error-%")
		b.ReportMetric(worstWindow, "worst-window-error-%")
		b.Logf("estimate (dry run before the move) vs actual, %d rehearsals (%v MB) then moves (%v MB):\n%s",
			len(rehearsed), rehearsed, moved, table.String())
		verdict := "met"
		if len(missed) > 0 {
			verdict = "missed: " + strings.Join(missed, ", ")
		}
		b.Logf("goal: every total within ±20%% (worst %.0f%%), every window within ±50%% (worst %.0f%%): %s",
			worstTotal, worstWindow, verdict)
	}
}

// sizesFromEnv is the comma-separated sizes in the environment variable,
// or def.
func sizesFromEnv(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var sizes []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want sizes in MB like 10,100,400", name, v)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// orderEntrySchema is a tenant's tables; its data, indexes and foreign
// keys come after (addSizedTenant), as a restore would make them.
const orderEntrySchema = `
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL, title text NOT NULL, price_cents int NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL,
	placed_at timestamptz NOT NULL, total_cents bigint NOT NULL);
CREATE TABLE order_items (order_id bigint NOT NULL, line int NOT NULL, product_id bigint NOT NULL,
	quantity int NOT NULL, price_cents int NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE order_events (id bigserial PRIMARY KEY, order_id bigint NOT NULL, at timestamptz NOT NULL, note text NOT NULL);
`

// addSizedTenant adds tenant id (database id) on pg-a with about mb MB
// of data: rows made server-side by generate_series, then the indexes
// and foreign keys, then a VACUUM ANALYZE, as a tenant in service has.
func addSizedTenant(b *testing.B, f *cutovertest.Fleet, id string, mb int) {
	b.Helper()
	ctx := context.Background()
	began := time.Now()
	if err := f.AddTenant(ctx, id, id, "pg-a", orderEntrySchema); err != nil {
		b.Fatal(err)
	}
	// Per MB: about 80 kB of customers, 260 kB of orders, 420 kB of
	// order items and 250 kB of events, with their indexes.
	n := func(perMB int) string { return strconv.Itoa(perMB * mb) }
	data := []string{
		`INSERT INTO customers SELECT g, 'customer' || g || '@example.com', 'Customer ' || md5(g::text), now() - g * interval '1 min'
			FROM generate_series(1, ` + n(400) + `) g`,
		`INSERT INTO products SELECT g, 'SKU-' || g, 'Product ' || md5(g::text), 100 + g % 10000
			FROM generate_series(1, ` + n(20) + `) g`,
		`INSERT INTO orders SELECT g, 1 + g % ` + n(400) + `, (ARRAY['new','paid','shipped','delivered'])[1 + g % 4],
			now() - g * interval '1 s', 1000 + g % 100000 FROM generate_series(1, ` + n(2000) + `) g`,
		`INSERT INTO order_items SELECT 1 + g / 3, g % 3, 1 + g % ` + n(20) + `, 1 + g % 5, 100 + g % 10000
			FROM generate_series(0, ` + n(6000) + ` - 1) g`,
		`INSERT INTO order_events (order_id, at, note) SELECT 1 + g % ` + n(2000) + `, now() - g * interval '1 s',
			repeat(md5(g::text), 4) FROM generate_series(1, ` + n(800) + `) g`,
		`CREATE UNIQUE INDEX customers_email ON customers (email)`,
		`CREATE UNIQUE INDEX products_sku ON products (sku)`,
		`CREATE INDEX orders_customer ON orders (customer_id, placed_at)`,
		`CREATE INDEX order_items_product ON order_items (product_id)`,
		`CREATE INDEX order_events_order ON order_events (order_id, at)`,
		`ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers`,
		`ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders, ADD FOREIGN KEY (product_id) REFERENCES products`,
		`ALTER TABLE order_events ADD FOREIGN KEY (order_id) REFERENCES orders`,
		`VACUUM ANALYZE`,
	}
	var size int64
	onInstance(b, f, "pg-a", id, func(ctx context.Context, conn *pgx.Conn) error {
		for _, q := range data {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size)
	})
	b.Logf("tenant %s: %d MB in %s", id, size>>20, time.Since(began).Round(time.Second))
}

// checkpoint writes back what the instances hold dirty (the tenants'
// creation, the last run's copy) before the next run is timed, so that
// each run starts from the same state.
func checkpoint(b *testing.B, f *cutovertest.Fleet) {
	b.Helper()
	for _, inst := range []string{"pg-a", "pg-b"} {
		onInstance(b, f, inst, "postgres", func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "CHECKPOINT")
			return err
		})
	}
}

// logMeasurement logs what a run measured, phase by phase: what the
// model is fitted to. DAISYCHAIN_BENCH_ESTIMATE_JSON, if set, names a
// file each measurement is appended to as a line of JSON, to study the
// fit without running again.
func logMeasurement(b *testing.B, m *cutover.Measurement) {
	b.Helper()
	if m == nil {
		b.Fatal("the run measured nothing")
	}
	b.Logf("%s\n  copy %s for %d MB of table, indexes %s for %d MB of index, catch-up tail %s, verify %s",
		m, roundMs(m.Phase(replica.PhaseCopy)), m.Shape.TableBytes>>20, roundMs(m.Phase(replica.PhaseIndexes)),
		m.Shape.IndexBytes>>20, roundMs(m.CatchUpTail), roundMs(m.Step(cutover.StepVerify)))
	path := os.Getenv("DAISYCHAIN_BENCH_ESTIMATE_JSON")
	if path == "" {
		return
	}
	line, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	_, err = out.Write(append(line, '\n'))
	if err = errors.Join(err, out.Close()); err != nil {
		b.Fatal(err)
	}
}

// loadAverage is the machine's 1-minute load average, or "unknown": how
// much else ran, which the samples' rates cannot know of.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

func roundMs(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
