package drain_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
)

// BenchmarkDrainRate drains small tenants (a few tables, a few hundred
// rows) off an instance at concurrency 1, 2 and 4 and reports tenants
// per minute for each, measured in the same run on the same instances.
//
//	go test ./drain -run '^$' -bench DrainRate -benchtime 1x
func BenchmarkDrainRate(b *testing.B) {
	const perRound = 6
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
	const schema = `CREATE TABLE customers (id serial PRIMARY KEY, name text);
		CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total int);
		INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 200) g;
		INSERT INTO orders (customer_id, total) SELECT 1 + g % 200, g FROM generate_series(1, 500) g;`
	// One tenant stays: a threshold of zero tenants would set no limit.
	if err := f.AddTenant(ctx, "resident", "resident", "pg-a", schema); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		for _, conc := range []int{1, 2, 4} {
			for range perRound {
				n++
				id := fmt.Sprintf("t%03d", n)
				if err := f.AddTenant(ctx, id, id, "pg-a", schema); err != nil {
					b.Fatal(err)
				}
			}
			on, err := f.Catalog.Tenants(ctx, "pg-a")
			if err != nil {
				b.Fatal(err)
			}
			runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Concurrency: conc})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			res, err := runner.Drain(ctx, "pg-a", drain.Threshold{MaxTenants: int64(len(on) - perRound)}, nil)
			if err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			rate := float64(len(res.Moved)) / elapsed.Minutes()
			b.ReportMetric(rate, fmt.Sprintf("tenants/min-c%d", conc))
			b.Logf("concurrency %d: %d tenants in %s: %.1f tenants/min", conc, len(res.Moved), elapsed.Round(time.Millisecond), rate)
		}
	}
}
