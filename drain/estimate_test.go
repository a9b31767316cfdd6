package drain_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
)

// countingJournal counts the reads of measurements, which each rate
// model costs.
type countingJournal struct {
	*cutover.PostgresJournal
	reads atomic.Int64
}

func (j *countingJournal) Measurements(ctx context.Context, opts *cutover.MeasurementsOpts) ([]cutover.Measurement, error) {
	j.reads.Add(1)
	return j.PostgresJournal.Measurements(ctx, opts)
}

// TestDryRunEstimates: a drain's, a refill's and a chain's dry runs
// estimate every move (and conversion) from the rate model of its
// instance pair, read once per pair, not once per move: the library's
// defaults with nothing measured; then, after two rehearsals of pg-a ->
// pg-b, that pair's rehearsals and, for pg-a -> pg-c, the fleet's. The
// plan's estimate is its moves' on the Runner's slots, and the reports
// say what the estimates rest on.
func TestDryRunEstimates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-b", "pg-c"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	// pg-a's limit is what the chain refills it to; pg-b's and pg-c's
	// spread a drain over both.
	for id, max := range map[string]int64{"pg-a": 4, "pg-b": 10, "pg-c": 10} {
		inst, err := f.Catalog.Instance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		inst.Limits.MaxTenants = max
		if err := f.Catalog.RegisterInstance(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range []string{"t1", "t2", "t3", "t4", "t5"} {
		schema := "CREATE TABLE items (id serial PRIMARY KEY, v text); INSERT INTO items (v) SELECT repeat('x', 100) FROM generate_series(1, " +
			[]string{"10", "100", "1000", "10000", "30000"}[i] + ")"
		if err := f.AddTenant(ctx, id, id, "pg-a", schema); err != nil {
			t.Fatal(err)
		}
	}
	journal := &countingJournal{PostgresJournal: f.Journal}
	mover, err := cutover.New(&cutover.Config{Catalog: f.Catalog, Publisher: f.Publisher, Routes: f.Routes, Journal: journal})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	threshold := drain.Threshold{MaxTenants: 1}

	// Nothing measured: the defaults, one model per pair.
	before := journal.reads.Load()
	plan, err := runner.DryRun(ctx, "pg-a", threshold, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", plan)
	reads := journal.reads.Load() - before
	if len(plan.Moves) != 4 || len(plan.Basis) != 2 {
		t.Fatalf("plan of %d moves over %d pairs, want 4 over pg-a -> pg-b and pg-a -> pg-c:\n%s", len(plan.Moves), len(plan.Basis), plan)
	}
	if reads > 2*int64(len(plan.Basis)) {
		t.Errorf("the dry run read measurements %d times for %d pairs: at most twice a pair (its own, then the fleet's)", reads, len(plan.Basis))
	}
	var sum time.Duration
	for _, m := range plan.Moves {
		model, err := mover.RateModel(ctx, m.From, m.To, false)
		if err != nil {
			t.Fatal(err)
		}
		want := mover.EstimateMove(model, model.ShapeOf(m.Bytes), false)
		if m.Estimate != want.Total || m.EstimateLow != want.Low || m.EstimateHigh != want.High || m.Estimate <= 0 {
			t.Errorf("move of %s (%d bytes) estimated %s (%s to %s), want the model's %s (%s to %s)", m.Tenant, m.Bytes,
				m.Estimate, m.EstimateLow, m.EstimateHigh, want.Total, want.Low, want.High)
		}
		sum += m.Estimate
	}
	if plan.Estimate != sum || plan.EstimateLow > plan.Estimate || plan.EstimateHigh < plan.Estimate {
		t.Errorf("plan estimated %s (%s to %s), want its moves' one after another, %s, within its range", plan.Estimate,
			plan.EstimateLow, plan.EstimateHigh, sum)
	}
	for _, pb := range plan.Basis {
		if pb.Basis.Samples != 0 {
			t.Errorf("with nothing measured, %s", pb)
		}
	}
	if !strings.Contains(plan.String(), "pg-a -> pg-b, pg-a -> pg-c: no measured runs") {
		t.Errorf("the report does not say its estimates rest on the defaults:\n%s", plan)
	}
	// The bigger tenant takes longer.
	if plan.Moves[0].Estimate >= plan.Moves[3].Estimate {
		t.Errorf("%s (%d bytes) estimated %s, %s (%d bytes) %s", plan.Moves[0].Tenant, plan.Moves[0].Bytes, plan.Moves[0].Estimate,
			plan.Moves[3].Tenant, plan.Moves[3].Bytes, plan.Moves[3].Estimate)
	}

	for _, id := range []string{"rehearsal-1", "rehearsal-2"} {
		if rep, err := mover.Rehearse(ctx, cutover.RehearseRequest{ID: id, Tenant: "t3", Target: "pg-b"}); err != nil {
			t.Fatalf("rehearsal: %v\n%s", err, rep)
		}
	}
	plan, err = runner.DryRunRefill(ctx, "pg-b", []string{"pg-a"}, drain.Threshold{MaxTenants: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", plan)
	if len(plan.Basis) != 1 || plan.Basis[0].Basis.Scope != "pg-a->pg-b" || plan.Basis[0].Basis.Rehearsals != 2 {
		t.Errorf("the refill's estimates rest on %+v, want the 2 rehearsals of pg-a->pg-b", plan.Basis)
	}
	if !strings.Contains(plan.String(), "pg-a -> pg-b: 2 measured runs of pg-a->pg-b (2 rehearsals)") {
		t.Errorf("the refill's report does not say its basis:\n%s", plan)
	}

	chain, err := runner.DryRunChain(ctx, drain.ChainRequest{Instances: []string{"pg-a"}, Spares: []string{"pg-b", "pg-c"}, Threshold: threshold})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", chain)
	st := chain.Stages[0]
	if st.Convert == nil || st.Convert.Total <= 0 || st.Convert.Window <= 0 {
		t.Fatalf("the chain's conversion is estimated %+v", st.Convert)
	}
	if want := st.Drain.Estimate + st.Convert.Total + st.Refill.Estimate; chain.Estimate != want || st.Refill.Estimate <= 0 {
		t.Errorf("the chain estimated %s, want its drain's, conversion's and refill's, %s", chain.Estimate, want)
	}
	scopes := map[string]string{}
	for _, pb := range chain.Basis {
		scopes[pb.String()[:strings.Index(pb.String(), ":")]] = pb.Basis.Scope
	}
	for pair, scope := range map[string]string{"pg-a -> pg-b": "pg-a->pg-b", "pg-a -> pg-c": "fleet", "convert pg-a into pg-a.1": ""} {
		if got, ok := scopes[pair]; !ok || got != scope {
			t.Errorf("the chain's estimates of %s rest on %q (listed: %v), want %q", pair, got, ok, scope)
		}
	}
	for _, s := range []string{"convert pg-a into pg-a.1 with 1 tenants", "window", "the chain takes about", "2 measured runs of fleet (2 rehearsals)"} {
		if !strings.Contains(chain.String(), s) {
			t.Errorf("the chain's report does not say %q:\n%s", s, chain)
		}
	}
}
