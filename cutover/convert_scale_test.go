package cutover_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleet"
)

// scaleFleet is an instance of many tiny tenant databases, a sample of
// them written to through the Router: what a conversion at the scale of
// a fleet's instance must carry over without an error or a lost write.
type scaleFleet struct {
	*cutovertest.Fleet
	ids       []string
	written   []string
	workloads []*cutovertest.Workload
}

// startScaleFleet starts instance pg-a with n tenants and 8 of them (at
// most) under paced writes.
func startScaleFleet(tb testing.TB, n int) *scaleFleet {
	tb.Helper()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a"}})
	if err != nil {
		tb.Fatal(err)
	}
	s := &scaleFleet{Fleet: f, ids: make([]string, n)}
	tb.Cleanup(func() {
		for _, w := range s.workloads {
			w.Stop()
		}
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	})
	for i := range s.ids {
		s.ids[i] = fmt.Sprintf("t%04d", i)
	}
	if err := f.AddTenantsFromTemplate(ctx, "pg-a", s.ids, ""); err != nil {
		tb.Fatal(err)
	}
	s.written = s.ids[:min(8, n)]
	for _, id := range s.written {
		s.workloads = append(s.workloads, cutovertest.StartPacedWorkload(f.Router, id, 1, 5*time.Millisecond))
	}
	for _, w := range s.workloads {
		if err := w.WaitForAcks(ctx, 5); err != nil {
			tb.Fatal(err)
		}
		w.ResetGap()
	}
	return s
}

// appSaw is what the application saw of a conversion.
type appSaw struct {
	appGap                 time.Duration
	errors, missing, acked int64
	firstErr               error
}

// missingOn counts the acknowledged writes of the sample missing on the
// local instance at port.
func (s *scaleFleet) missingOn(tb testing.TB, port int) int64 {
	tb.Helper()
	ctx := context.Background()
	inst := s.ReplicaInstance(port)
	if inst == nil {
		for _, i := range s.Instances {
			if i.Port() == port {
				inst = i
			}
		}
	}
	if inst == nil {
		tb.Fatalf("no local instance at port %d", port)
	}
	var missing int64
	for i, id := range s.written {
		conn, err := inst.Connect(ctx, id)
		if err != nil {
			tb.Fatal(err)
		}
		m, err := s.workloads[i].Missing(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		missing += m
	}
	return missing
}

// stopWriters stops the sample's writers and returns what they saw.
func (s *scaleFleet) stopWriters() appSaw {
	var a appSaw
	for _, w := range s.workloads {
		st := w.Stop()
		a.appGap = max(a.appGap, st.MaxGap)
		a.errors += st.Errors
		a.acked += st.Acknowledged
		if a.firstErr == nil {
			a.firstErr = st.FirstError
		}
	}
	return a
}

// misrouted lists the tenants whose published route is not an unpaused
// route to instance, or whose catalog entry is not on it.
func (s *scaleFleet) misrouted(tb testing.TB, instance string) []string {
	tb.Helper()
	ctx := context.Background()
	var bad []string
	for _, id := range s.ids {
		route, found, err := s.Publisher.Published(ctx, id)
		if err != nil {
			tb.Fatal(err)
		}
		tn, err := s.Catalog.Locate(ctx, id)
		if err != nil {
			tb.Fatal(err)
		}
		if !found || route.Instance != instance || route.Paused || tn.Instance != instance {
			bad = append(bad, fmt.Sprintf("%s (route %s, catalog %s)", id, route, tn.Instance))
		}
	}
	return bad
}

// TestConvertAtScale: an instance of 300 tenants, a sample under writes.
// First a conversion over its budget (held at its promotion until the
// budget ends) rolls back: every route back on the old instance unpaused,
// every database open again, no new instance left in the catalog, no
// write lost. Then the conversion goes through: every route and catalog
// entry on the new instance, no application error, no write lost.
func TestConvertAtScale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const tenants = 300
	s := startScaleFleet(t, tenants)
	newID := cutovertest.ConvertedID("pg-a", 1)

	overBudget, err := s.Mover(&cutover.Config{Converter: s.Converter(), WindowBudget: 3 * time.Second,
		BeforeStep: func(ctx context.Context, _ string, step cutover.Step) error {
			if step == cutover.StepPromote {
				<-ctx.Done() // the window's budget ends here
				return ctx.Err()
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := overBudget.Convert(ctx, cutover.ConvertRequest{ID: "over-budget", Instance: "pg-a", NewInstance: newID})
	if !errors.Is(err, cutover.ErrBudgetExceeded) || !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("Convert over its budget: %v, want ErrBudgetExceeded and ErrRolledBack\n%s", err, rep)
	}
	t.Logf("over budget: %s", rep)
	if bad := s.misrouted(t, "pg-a"); len(bad) != 0 {
		t.Errorf("after the rollback, %d of %d tenants are not routed to pg-a unpaused: %s", len(bad), tenants, strings.Join(bad[:min(5, len(bad))], "; "))
	}
	if _, err := s.Catalog.Instance(ctx, newID); !errors.Is(err, fleet.ErrInstanceNotFound) {
		t.Errorf("the rolled-back conversion left %s in the catalog (%v)", newID, err)
	}
	admin, err := s.Instances["pg-a"].Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	var closed int
	err = admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1) AND NOT datallowconn", s.ids).Scan(&closed)
	admin.Close(ctx)
	if err != nil || closed != 0 {
		t.Errorf("%d tenant databases still refuse connections after the rollback (%v)", closed, err)
	}
	for _, w := range s.workloads {
		waitForAcks(t, w, 5) // writes go on, on the old instance
	}
	if missing := s.missingOn(t, s.Instances["pg-a"].Port()); missing != 0 {
		t.Errorf("%d acknowledged writes missing on pg-a after the rollback", missing)
	}

	mover, err := s.Mover(&cutover.Config{Converter: s.Converter(), WindowBudget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = mover.Convert(ctx, cutover.ConvertRequest{ID: "convert", Instance: "pg-a", NewInstance: newID})
	if err != nil {
		t.Fatalf("Convert: %v\n%s", err, rep)
	}
	t.Logf("%s", rep)
	for _, w := range s.workloads {
		waitForAcks(t, w, 5) // writes go on, on the new instance
	}
	app := s.stopWriters()
	newInst, err := s.Catalog.Instance(ctx, newID)
	if err != nil {
		t.Fatal(err)
	}
	missing := s.missingOn(t, newInst.Endpoint.Port)
	t.Logf("application: %d acknowledged writes, %d errors, longest gap %s; %d missing", app.acked, app.errors, app.appGap, missing)
	if app.errors != 0 || missing != 0 || app.acked == 0 {
		t.Errorf("%d application errors (first: %v), %d of %d acknowledged writes missing", app.errors, app.firstErr, missing, app.acked)
	}
	if bad := s.misrouted(t, newID); len(bad) != 0 {
		t.Errorf("%d of %d tenants are not routed to %s: %s", len(bad), tenants, newID, strings.Join(bad[:min(5, len(bad))], "; "))
	}
	if rep.Tenants != tenants || rep.Kind != "convert" {
		t.Errorf("report: kind %q, %d tenants, want convert and %d", rep.Kind, rep.Tenants, tenants)
	}
}
