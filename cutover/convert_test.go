package cutover_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleet"
)

// TestConvertUnderWrites converts an instance with three tenants, each
// under writes through the Router, onto a replica of itself: one window
// for all of them, every route and the catalog on the new instance, every
// acknowledged write there, no application error, no slot left behind;
// the copy's progress reported on the way, as a move's is.
func TestConvertUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var workloads []*cutovertest.Workload
	for i := range 3 {
		id := fmt.Sprintf("t%d", i)
		if err := f.AddTenant(ctx, id, id, "pg-a", shopSchema); err != nil {
			t.Fatal(err)
		}
		workloads = append(workloads, cutovertest.StartWorkload(f.Router, id, 2))
	}
	mover, err := f.Mover(&cutover.Config{Converter: f.Converter(), WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	newID := cutovertest.ConvertedID("pg-a", 1)
	plan, err := mover.DryRunConvert(ctx, cutover.ConvertRequest{ID: "convert-1", Instance: "pg-a", NewInstance: newID})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", plan)
	if len(plan.Problems) != 0 || plan.Tenants != 3 || plan.Bytes == 0 || !slices.Contains(plan.Steps, cutover.StepPromote) {
		t.Errorf("dry run of the conversion: %+v", plan)
	}
	if open, _ := f.Journal.Open(ctx, cutover.KindMove); len(open) != 0 {
		t.Errorf("the dry run was journaled: %v", open)
	}
	progress, unsubscribe := mover.Subscribe(cutover.EventProgress)
	rep, err := mover.Convert(ctx, cutover.ConvertRequest{ID: "convert-1", Instance: "pg-a", NewInstance: newID})
	unsubscribe()
	if err != nil {
		t.Fatalf("convert: %v\n%s", err, rep)
	}
	reported := 0
	for e := range progress {
		if e.Move == "convert-1" && e.Step == cutover.StepCatchUp && e.Progress != nil {
			reported++
		}
	}
	if reported == 0 {
		t.Error("the conversion reported no progress of its copy")
	}
	for _, w := range workloads {
		waitForAcks(t, w, 10) // writes go on, on the new instance
	}
	t.Logf("%s", rep)
	newInst, err := f.Catalog.Instance(ctx, newID)
	if err != nil {
		t.Fatal(err)
	}
	replica := f.ReplicaInstance(newInst.Endpoint.Port)
	if replica == nil {
		t.Fatal("no local replica at the new instance's endpoint")
	}
	for i, w := range workloads {
		stats := w.Stop()
		id := fmt.Sprintf("t%d", i)
		if tn, err := f.Catalog.Locate(ctx, id); err != nil || tn.Instance != newID {
			t.Errorf("%s: catalog %+v, %v", id, tn, err)
		}
		if route, err := f.Routes.Resolve(ctx, id); err != nil || route.Instance != newID || route.Paused {
			t.Errorf("%s: route %v, %v", id, route, err)
		}
		conn, err := replica.Connect(ctx, id)
		if err != nil {
			t.Fatalf("%s on the new instance: %v", id, err)
		}
		missing, err := w.Missing(ctx, conn)
		conn.Close(ctx)
		if err != nil || missing != 0 || stats.Errors != 0 || stats.Acknowledged == 0 {
			t.Errorf("%s: %d of %d writes missing (%v), %d application errors (%v)", id, missing, stats.Acknowledged, err, stats.Errors, stats.FirstError)
		}
	}
	src, err := f.Instances["pg-a"].Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	var slots int
	if err := src.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil || slots != 0 {
		t.Errorf("%d slots left on the old instance (%v)", slots, err)
	}
}

// TestConvertRolledBackAfterRegister: a conversion whose copy does not
// catch up in time rolls back with ErrCatchUpTimeout, as a move does. A
// conversion that fails after it registered its new instance rolls back
// and takes the instance out of the catalog, so nothing is placed there
// and the conversion can be tried again under the same new ID, which then
// completes.
func TestConvertRolledBackAfterRegister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.AddTenant(ctx, "acme", "acme", "pg-a", shopSchema); err != nil {
		t.Fatal(err)
	}
	newID := cutovertest.ConvertedID("pg-a", 1)
	slow, err := f.Mover(&cutover.Config{Converter: f.Converter(), CatchUpTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := slow.Convert(ctx, cutover.ConvertRequest{ID: "convert-0", Instance: "pg-a", NewInstance: newID})
	if !errors.Is(err, cutover.ErrCatchUpTimeout) || !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("Convert with a copy that cannot catch up in time: %v, want ErrCatchUpTimeout and ErrRolledBack\n%s", err, rep)
	}
	failing, err := f.Mover(&cutover.Config{Converter: f.Converter(), WindowBudget: 30 * time.Second,
		BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepSwitch {
				return errors.New("injected failure after register")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = failing.Convert(ctx, cutover.ConvertRequest{ID: "convert-1", Instance: "pg-a", NewInstance: newID})
	if !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("Convert failing at its switch: %v\n%s", err, rep)
	}
	if _, err := f.Catalog.Instance(ctx, newID); !errors.Is(err, fleet.ErrInstanceNotFound) {
		t.Errorf("the rolled-back conversion left %s in the catalog (%v)", newID, err)
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-a" || route.Paused {
		t.Errorf("route after the rollback: %v, %v", route, err)
	}
	mover, err := f.Mover(&cutover.Config{Converter: f.Converter(), WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := mover.Convert(ctx, cutover.ConvertRequest{ID: "convert-2", Instance: "pg-a", NewInstance: newID}); err != nil {
		t.Fatalf("the conversion tried again: %v\n%s", err, rep)
	}
	if tn, err := f.Catalog.Locate(ctx, "acme"); err != nil || tn.Instance != newID {
		t.Errorf("catalog after the second conversion: %+v, %v", tn, err)
	}
}
