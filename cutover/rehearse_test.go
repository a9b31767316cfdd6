package cutover_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/replica"
)

// TestRehearseThenEstimate: rehearsals of a tenant under writes change
// nothing an application or an operator sees (route, catalog, no scratch
// database or replication object left, no application error) and feed
// the rate model: a dry run then rests on them, and the move after it
// carries an estimate and records what it measured.
func TestRehearseThenEstimate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	waitForAcks(t, w, 20)

	// Bad inputs change nothing: no journal, nothing on the target.
	if _, err := mover.Rehearse(ctx, cutover.RehearseRequest{Tenant: "nobody", Target: "pg-b"}); !errors.Is(err, cutover.ErrPreflight) {
		t.Errorf("rehearsal of an unknown tenant: %v, want ErrPreflight", err)
	}
	if _, err := mover.Rehearse(ctx, cutover.RehearseRequest{Tenant: "acme", Target: "pg-a"}); !errors.Is(err, cutover.ErrPreflight) {
		t.Errorf("rehearsal onto the tenant's own instance: %v, want ErrPreflight", err)
	}

	for i, id := range []string{"rehearsal-1", "rehearsal-2"} {
		rep, err := mover.Rehearse(ctx, cutover.RehearseRequest{ID: id, Tenant: "acme", Target: "pg-b"})
		if err != nil {
			t.Fatalf("rehearsal %d: %v\n%s", i+1, err, rep)
		}
		t.Logf("%s", rep)
		m := rep.Measurement
		if m == nil {
			t.Fatal("the rehearsal's report has no measurement")
		}
		t.Logf("%s", m)
		if m.Kind != cutover.MeasuredRehearsal || m.Source != "pg-a" || m.Target != "pg-b" {
			t.Errorf("measurement %s %s->%s, want a rehearsal pg-a->pg-b", m.Kind, m.Source, m.Target)
		}
		for _, s := range []cutover.Step{cutover.StepStream, cutover.StepCatchUp, cutover.StepBarrier, cutover.StepWaitTarget, cutover.StepSnapshot} {
			if m.Step(s) <= 0 {
				t.Errorf("the rehearsal did not time step %s", s)
			}
		}
		for _, s := range []cutover.Step{cutover.StepPause, cutover.StepFence, cutover.StepSwitch, cutover.StepCatalog} {
			if m.Step(s) != 0 {
				t.Errorf("the rehearsal ran step %s", s)
			}
		}
		// 500 customers and 2,000 orders, and what the workload wrote.
		if m.RowsCopied < 2500 || m.BytesCopied <= 0 || m.Phase(replica.PhaseCopy) <= 0 || m.Shape.Tables < 3 || m.Shape.IndexBytes <= 0 {
			t.Errorf("measured %d rows, %d bytes, copy phase %s, %d tables, %d index bytes", m.RowsCopied, m.BytesCopied,
				m.Phase(replica.PhaseCopy), m.Shape.Tables, m.Shape.IndexBytes)
		}
		// Nothing moved, nothing left.
		if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
			t.Errorf("after the rehearsal the route is %+v (%v), want pg-a unpaused", route, err)
		}
		if tenant, err := f.Catalog.Locate(ctx, "acme"); err != nil || tenant.Instance != "pg-a" {
			t.Errorf("after the rehearsal the catalog has %+v (%v)", tenant, err)
		}
		if databaseExists(t, f, "pg-b", cutover.RehearsalDatabase("acme")) || databaseExists(t, f, "pg-b", "acme") {
			t.Error("the rehearsal left a database on pg-b")
		}
		assertNoReplicationObjects(t, f)
	}

	var store cutover.MeasurementStore = f.Journal
	got, err := store.Measurements(ctx, &cutover.MeasurementsOpts{Source: "pg-a", Target: "pg-b"})
	if err != nil || len(got) != 2 || got[0].Move != "rehearsal-2" {
		t.Fatalf("measurements of pg-a->pg-b: %d (%v), want rehearsal-2 then rehearsal-1", len(got), err)
	}
	if _, err := store.Measurements(ctx, &cutover.MeasurementsOpts{Source: "pg-a"}); !errors.Is(err, cutover.ErrInvalidConfig) {
		t.Errorf("measurements of a source without a target: %v, want ErrInvalidConfig", err)
	}

	dry, err := mover.DryRun(ctx, cutover.Request{Tenant: "acme", Target: "pg-b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s%s", dry, dry.Estimate)
	e := dry.Estimate
	if e == nil || e.Basis.Scope != "pg-a->pg-b" || e.Basis.Rehearsals != 2 {
		t.Fatalf("the dry run's estimate rests on %+v, want the two rehearsals of pg-a->pg-b", e)
	}
	if s := e.Step(cutover.StepCatchUp); s.Samples != 2 || s.Estimate <= 0 || s.Low > s.Estimate || s.High < s.Estimate {
		t.Errorf("catch-up estimate %+v, want one on 2 samples with a range about it", s)
	}
	if s := e.Step(cutover.StepFence); s.Samples != 0 {
		t.Errorf("the fence's estimate rests on %d samples: no rehearsal fences", s.Samples)
	}
	if !strings.Contains(dry.String(), "basis: 2 measured runs of pg-a->pg-b (2 rehearsals)") {
		t.Errorf("the dry run's report does not say its basis:\n%s", dry)
	}

	events, unsubscribe := mover.Subscribe(cutover.EventStepStarted)
	rep, err := mover.Move(ctx, cutover.Request{ID: "move-1", Tenant: "acme", Target: "pg-b"})
	unsubscribe()
	if err != nil {
		t.Fatalf("move: %v\n%s", err, rep)
	}
	var etas int
	for e := range events {
		if e.ETA > 0 {
			etas++
		}
	}
	if etas == 0 {
		t.Error("no step event of the move carried an ETA")
	}
	if rep.Estimate == nil || rep.Measurement == nil || rep.Measurement.Kind != cutover.MeasuredMove || rep.Measurement.Step(cutover.StepFence) <= 0 {
		t.Fatalf("the move's report: estimate %v, measurement %v", rep.Estimate, rep.Measurement)
	}
	t.Logf("move estimated %s (%s to %s), took %s", rep.Estimate.Total, rep.Estimate.Low, rep.Estimate.High, rep.Measurement.Total)
	if got, err = store.Measurements(ctx, &cutover.MeasurementsOpts{Source: "pg-a", Target: "pg-b"}); err != nil || len(got) != 3 || got[0].Move != "move-1" {
		t.Errorf("measurements after the move: %d (%v), want 3, move-1 first", len(got), err)
	}
	stats := w.Stop()
	if stats.Errors != 0 {
		t.Errorf("the application saw %d errors; first: %v", stats.Errors, stats.FirstError)
	}
}

// TestRehearsalFailureDropsItsCopy: a rehearsal that fails in its window
// drops its scratch database and replication objects, and says so.
func TestRehearsalFailureDropsItsCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	boom := errors.New("boom")
	mover, err := f.Mover(&cutover.Config{BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
		if s == cutover.StepWaitTarget {
			return boom
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mover.Rehearse(ctx, cutover.RehearseRequest{ID: "r", Tenant: "acme", Target: "pg-b"})
	if !errors.Is(err, cutover.ErrRolledBack) || !errors.Is(err, boom) {
		t.Fatalf("rehearsal: %v, want ErrRolledBack from boom\n%s", err, rep)
	}
	if databaseExists(t, f, "pg-b", cutover.RehearsalDatabase("acme")) {
		t.Error("the failed rehearsal left its scratch database")
	}
	assertNoReplicationObjects(t, f)
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
		t.Errorf("route %+v (%v), want pg-a unpaused", route, err)
	}
	open, err := f.Journal.Open(ctx, cutover.KindMove)
	if err != nil || len(open) != 0 {
		t.Errorf("open journals after the failed rehearsal: %v (%v)", open, err)
	}
}

// TestRehearsalCrash kills a rehearsal with SIGKILL in its copy, in its
// window and in its end, and resumes it: Resume drops what it made (the
// scratch database, the slot, the publication, the subscription) and
// closes its journal, and the tenant never left its source.
func TestRehearsalCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process at three steps")
	}
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []cutover.Step{cutover.StepCatchUp, cutover.StepWaitTarget, cutover.StepRehearsed} {
		id := "rehearsal-crash-" + string(step)
		cutovertest.KillChildAt(t, "TestCrashChild", crashChildEnv, crashChild{ControlURL: f.URL, Move: id, Tenant: "acme", Step: step, Rehearse: true})
		if !databaseExists(t, f, "pg-b", cutover.RehearsalDatabase("acme")) {
			t.Errorf("crash at %s: no scratch database on pg-b to drop: the kill came too early to test anything", step)
		}
		rep, err := mover.Resume(ctx, id)
		if err != nil || !rep.RolledBack {
			t.Fatalf("crash at %s: Resume: %v (rolled back %v)", step, err, rep != nil && rep.RolledBack)
		}
		if databaseExists(t, f, "pg-b", cutover.RehearsalDatabase("acme")) {
			t.Errorf("crash at %s: Resume left the scratch database", step)
		}
		assertNoReplicationObjects(t, f)
		if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
			t.Errorf("crash at %s: route %+v (%v), want pg-a unpaused", step, route, err)
		}
		if open, err := f.Journal.Open(ctx, cutover.KindMove); err != nil || len(open) != 0 {
			t.Errorf("crash at %s: open journals %v (%v)", step, open, err)
		}
	}
}
