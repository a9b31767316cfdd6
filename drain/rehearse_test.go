package drain_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
)

// TestRehearseSample rehearses the smallest and the largest of five
// tenants of different sizes: the pair's rate model then rests on them,
// and nothing moved. Bad inputs are refused, rehearsing nothing.
func TestRehearseSample(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("t%d", i)
		// t3 is the largest, t1 the smallest: not in catalog order.
		rows := map[int]int{1: 100, 2: 2000, 3: 20000, 4: 5000, 5: 1000}[i]
		schema := fmt.Sprintf("CREATE TABLE items (id serial PRIMARY KEY, v text); INSERT INTO items (v) SELECT repeat('x', 200) FROM generate_series(1, %d)", rows)
		if err := f.AddTenant(ctx, id, id, "pg-a", schema); err != nil {
			t.Fatal(err)
		}
	}
	mover, err := f.Mover(nil)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover})
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"onto its own instance": func() error { _, err := runner.RehearseSample(ctx, "pg-a", "pg-a", nil); return err },
		"onto no instance":      func() error { _, err := runner.RehearseSample(ctx, "pg-a", "pg-z", nil); return err },
		"a negative count": func() error {
			_, err := runner.RehearseSample(ctx, "pg-a", "pg-b", &drain.RehearseOpts{Tenants: -1})
			return err
		},
	} {
		if err := call(); !errors.Is(err, drain.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	reports, err := runner.RehearseSample(ctx, "pg-a", "pg-b", &drain.RehearseOpts{Tenants: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || reports[0].Tenant != "t1" || reports[1].Tenant != "t3" {
		t.Fatalf("rehearsed %d: want t1 then t3", len(reports))
	}
	model, err := mover.RateModel(ctx, "pg-a", "pg-b", false)
	if err != nil {
		t.Fatal(err)
	}
	if model.Basis.Scope != "pg-a->pg-b" || model.Basis.Rehearsals != 2 {
		t.Errorf("the model rests on %s, want the 2 rehearsals", model.Basis)
	}
	if on, err := f.Catalog.Tenants(ctx, "pg-b"); err != nil || len(on) != 0 {
		t.Errorf("pg-b holds %d tenants (%v) after rehearsals", len(on), err)
	}
	if dbs := databases(t, f, "pg-b"); len(dbs) != 0 {
		t.Errorf("pg-b has databases %v after rehearsals", dbs)
	}
	for _, rep := range reports {
		if rep.Kind != "rehearsal" || rep.Measurement == nil {
			t.Errorf("report of %s: kind %s, measurement %v", rep.Tenant, rep.Kind, rep.Measurement)
		}
	}
}
