package cutover_test

import (
	"context"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// startOnly is a replica.Provider with neither the StreamAborter nor the
// StreamFinisher capability.
type startOnly struct{ replica.Provider }

// TestResumeWithAProviderThatOnlyStarts: a move killed before its switch
// is resumed by a Mover whose Provider cannot abort a stream without a
// handle: Resume starts the stream again to abort it, so the tenant stays
// on the source, the target's copy is dropped and no slot or subscription
// is left. (After the switch, starting a logical stream again needs the
// fenced source, so the logical Provider's StreamFinisher is what
// finishes it.)
func TestResumeWithAProviderThatOnlyStarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	mover, err := f.Mover(&cutover.Config{WindowBudget: time.Minute, Provider: startOnly{&logical.Provider{}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tenant string
		step   cutover.Step
		want   string
	}{
		{"before", cutover.StepCatchUp, "pg-a"},
	} {
		if err := f.AddTenant(ctx, c.tenant, c.tenant, "pg-a", shopSchema); err != nil {
			t.Fatal(err)
		}
		move := "start-only-" + c.tenant
		cutovertest.KillChildAt(t, "TestCrashChild", crashChildEnv, crashChild{ControlURL: f.URL, Move: move, Tenant: c.tenant, Step: c.step})
		rep, err := mover.Resume(ctx, move)
		if err != nil {
			t.Fatalf("killed at %s: Resume: %v", c.step, err)
		}
		if rep.RolledBack != (c.want == "pg-a") {
			t.Errorf("killed at %s: report rolled back = %v, want %v", c.step, rep.RolledBack, c.want == "pg-a")
		}
		if tn, err := f.Catalog.Locate(ctx, c.tenant); err != nil || tn.Instance != c.want {
			t.Errorf("killed at %s: the catalog has the tenant on %q (%v), want %q", c.step, tn.Instance, err, c.want)
		}
		if onTarget := databaseExists(t, f, "pg-b", c.tenant); onTarget != (c.want == "pg-b") {
			t.Errorf("killed at %s: the target has the tenant's database: %v, want %v", c.step, onTarget, c.want == "pg-b")
		}
		assertNoReplicationObjects(t, f)
	}
}
