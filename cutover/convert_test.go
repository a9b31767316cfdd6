package cutover_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// TestConvertUnderWrites converts an instance with three tenants, each
// under writes through the Router, onto a replica of itself: one window
// for all of them, every route and the catalog on the new instance, every
// acknowledged write there, no application error, no slot left behind.
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
	rep, err := mover.Convert(ctx, cutover.ConvertRequest{ID: "convert-1", Instance: "pg-a", NewInstance: newID})
	time.Sleep(200 * time.Millisecond)
	if err != nil {
		t.Fatalf("convert: %v\n%s", err, rep)
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
