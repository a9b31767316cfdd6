package drain_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
)

// instance is an instance of a hand-built snapshot.
func instance(id string, limits fleet.Limits, tenants ...drain.TenantUsage) drain.InstanceUsage {
	return drain.InstanceUsage{Instance: fleet.Instance{ID: id, Limits: limits}, Tenants: tenants}
}

// tenant is a tenant of a hand-built snapshot; its database has its ID.
func tenant(id string, files, bytes int64, tps float64) drain.TenantUsage {
	return drain.TenantUsage{ID: id, Usage: fleet.Usage{Database: id, Files: files, Bytes: bytes, TPS: tps}}
}

func moved(p *drain.Plan) []string {
	var out []string
	for _, m := range p.Moves {
		out = append(out, m.Tenant+"->"+m.To)
	}
	return out
}

func affected(t *testing.T, p *drain.Plan, id string) drain.Affected {
	t.Helper()
	for _, a := range p.Instances {
		if a.Instance == id {
			return a
		}
	}
	t.Fatalf("plan does not list instance %s among %+v", id, p.Instances)
	return drain.Affected{}
}

func TestPlanDrainStopsAtThreshold(t *testing.T) {
	s := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("a", fleet.Limits{MaxFiles: 1000},
			tenant("t50", 50, 5000, 1), tenant("t10", 10, 1000, 1), tenant("t30", 30, 3000, 1),
			tenant("t20", 20, 2000, 1), tenant("t40", 40, 4000, 1)),
		instance("b", fleet.Limits{MaxFiles: 1000}),
	}}
	// 150 files; 10, 20 and 30 must go to get to 90.
	p, err := drain.PlanDrain(s, "a", drain.Threshold{MaxFiles: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moved(p), []string{"t10->b", "t20->b", "t30->b"}; !slices.Equal(got, want) {
		t.Fatalf("moves %v, want %v", got, want)
	}
	a := affected(t, p, "a")
	if a.Before.Files != 150 || a.After.Files != 90 || a.After.Tenants != 2 || a.After.Bytes != 9000 {
		t.Errorf("a before %+v after %+v, want 150 files before, 2 tenants 90 files 9000 bytes after", a.Before, a.After)
	}
	if b := affected(t, p, "b"); b.After.Files != 60 || b.After.Tenants != 3 {
		t.Errorf("b after %+v, want 3 tenants and 60 files", b.After)
	}

	// Exactly at the threshold holds: 140 files needs only t10 to go,
	// 120 t10 and t20; one file fewer needs one more move.
	for th, want := range map[int64]int{150: 0, 140: 1, 120: 2, 119: 3, 90: 3, 89: 4, 1: 5} {
		p, err := drain.PlanDrain(s, "a", drain.Threshold{MaxFiles: th}, nil)
		if err != nil || len(p.Moves) != want {
			t.Errorf("threshold %d files: %d moves, %v; want %d moves", th, len(p.Moves), err, want)
		}
	}
	// Tenants and bytes thresholds combine: all must hold.
	p, err = drain.PlanDrain(s, "a", drain.Threshold{MaxFiles: 140, MaxTenants: 2, MaxBytes: 14000}, nil)
	if err != nil || len(p.Moves) != 3 {
		t.Errorf("files 140, tenants 2, bytes 14000: %v, %v; want 3 moves", moved(p), err)
	}
}

func TestPlanDrainPlacesByHeadroomAfterTheMove(t *testing.T) {
	s := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("big", fleet.Limits{MaxFiles: 1000}, tenant("x", 500, 0, 0)),
		instance("small", fleet.Limits{MaxFiles: 100}),
		instance("src", fleet.Limits{}, tenant("t10", 10, 0, 0), tenant("t95", 95, 0, 0), tenant("t96", 96, 0, 0)),
	}}
	// t10: small would be 90% free after it, big 49%: small.
	// t95 and t96 do not fit on small any more (10+95 > 100): big.
	p, err := drain.PlanDrain(s, "src", drain.Threshold{MaxTenants: 1 << 40, MaxFiles: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moved(p), []string{"t10->small", "t95->big", "t96->big"}; !slices.Equal(got, want) {
		t.Fatalf("moves %v, want %v", got, want)
	}

	// The most constrained limit decides: files-full has room for 48
	// more tenants but only 10% of its files left.
	s = &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("files-full", fleet.Limits{MaxFiles: 1000, MaxTenants: 50},
			tenant("x", 900, 0, 0)),
		instance("tenants-half", fleet.Limits{MaxFiles: 1000, MaxTenants: 4},
			tenant("y", 1, 0, 0), tenant("z", 1, 0, 0)),
		instance("src", fleet.Limits{}, tenant("t", 5, 0, 0)),
	}}
	// files-full after: min(95/1000 free files, 48/50) = 9.5%;
	// tenants-half after: min(993/1000, 1/4) = 25%.
	p, err = drain.PlanDrain(s, "src", drain.Threshold{MaxFiles: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moved(p), []string{"t->tenants-half"}; !slices.Equal(got, want) {
		t.Fatalf("moves %v, want %v", got, want)
	}
}

func TestPlanDrainRefusesWhenNothingFits(t *testing.T) {
	s := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("full", fleet.Limits{MaxFiles: 100}, tenant("x", 90, 0, 0)),
		instance("few", fleet.Limits{MaxTenants: 1}),
		instance("src", fleet.Limits{}, tenant("s5", 5, 0, 0), tenant("s8", 8, 0, 0), tenant("s20", 20, 0, 0)),
	}}
	before := clone(s)
	// s5 goes to full (5% left after it, few would have none), s8 fills
	// few, and s20 fits nowhere.
	p, err := drain.PlanDrain(s, "src", drain.Threshold{MaxFiles: 10}, nil)
	if !errors.Is(err, drain.ErrUnplaced) {
		t.Fatalf("err = %v, want ErrUnplaced", err)
	}
	var pe *drain.PlacementError
	if !errors.As(err, &pe) {
		t.Fatalf("err %T is not a *PlacementError", err)
	}
	if p == nil || !slices.Equal(moved(p), []string{"s5->full", "s8->few"}) {
		t.Fatalf("partial plan %v, want [s5->full s8->few]", moved(p))
	}
	want := drain.Unplaced{Tenant: "s20", Files: 20, Nearest: "full", Limit: "max_files", Used: 95, Adding: 20, Max: 100}
	if len(pe.Unplaced) != 1 || pe.Unplaced[0] != want {
		t.Fatalf("Unplaced = %+v, want [%+v]", pe.Unplaced, want)
	}
	if pe.Instance != "src" || pe.Remaining.Files != 20 {
		t.Errorf("PlacementError for %s with %+v remaining, want src with 20 files", pe.Instance, pe.Remaining)
	}
	for _, s := range []string{"src", "s20", "full", "max_files", "95 + 20 > 100", "files <= 10"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if !reflect.DeepEqual(s, before) {
		t.Error("PlanDrain changed the snapshot")
	}

	// With every other instance excluded, the error says no instance
	// may receive tenants.
	_, err = drain.PlanDrain(s, "src", drain.Threshold{MaxFiles: 10}, &drain.DrainOpts{Exclude: []string{"full", "few"}})
	if !errors.As(err, &pe) || len(pe.Unplaced) != 3 || !strings.Contains(err.Error(), "no instance may receive tenants") {
		t.Errorf("all excluded: %v", err)
	}
}

func TestPlanDrainExcludedInstancesReceiveNothing(t *testing.T) {
	s := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("empty-but-excluded", fleet.Limits{MaxFiles: 1000}),
		instance("busy", fleet.Limits{MaxFiles: 1000}, tenant("x", 800, 0, 0)),
		instance("other-drain", fleet.Limits{MaxFiles: 1000}),
		instance("src", fleet.Limits{}, tenant("s1", 1, 0, 0), tenant("s2", 2, 0, 0)),
	}}
	p, err := drain.PlanDrain(s, "src", drain.Threshold{MaxFiles: 1}, &drain.DrainOpts{Exclude: []string{"empty-but-excluded", "other-drain"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moved(p), []string{"s1->busy", "s2->busy"}; !slices.Equal(got, want) {
		t.Fatalf("moves %v, want %v", got, want)
	}
	_, err = drain.PlanDrain(s, "src", drain.Threshold{MaxFiles: 1}, &drain.DrainOpts{Exclude: []string{"typo"}})
	if !errors.Is(err, drain.ErrInvalid) || !strings.Contains(err.Error(), `"typo"`) {
		t.Errorf("unknown excluded instance: %v, want ErrInvalid naming it", err)
	}
}

func TestPlanDrainOrder(t *testing.T) {
	s := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("src", fleet.Limits{},
			tenant("quiet-big", 9, 900, 0.1), tenant("busy-small", 1, 100, 50), tenant("mid", 5, 100, 5),
			tenant("mid-quieter", 5, 100, 1), tenant("mid-smaller", 5, 50, 9)),
		instance("dst", fleet.Limits{MaxFiles: 1000}),
	}}
	p, err := drain.PlanDrain(s, "src", drain.Threshold{MaxTenants: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Files, then bytes, then TPS.
	want := []string{"busy-small->dst", "mid-smaller->dst", "mid-quieter->dst", "mid->dst"}
	if got := moved(p); !slices.Equal(got, want) {
		t.Errorf("default order: %v, want %v", got, want)
	}
	quietest := func(a, b drain.TenantUsage) int { return int(a.TPS*10) - int(b.TPS*10) }
	p, err = drain.PlanDrain(s, "src", drain.Threshold{MaxTenants: 3}, &drain.DrainOpts{Order: quietest})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moved(p), []string{"quiet-big->dst", "mid-quieter->dst"}; !slices.Equal(got, want) {
		t.Errorf("caller's order: %v, want %v", got, want)
	}
}

func TestPlanDrainMaxMoves(t *testing.T) {
	s := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("src", fleet.Limits{}, tenant("a", 1, 0, 0), tenant("b", 1, 0, 0), tenant("c", 1, 0, 0)),
		instance("dst", fleet.Limits{MaxTenants: 10}),
	}}
	p, err := drain.PlanDrain(s, "src", drain.Threshold{MaxTenants: 0, MaxFiles: 1}, &drain.DrainOpts{MaxMoves: 1})
	if !errors.Is(err, drain.ErrMaxMoves) || p == nil || len(p.Moves) != 1 {
		t.Fatalf("MaxMoves 1: %v, %v; want one move and ErrMaxMoves", p, err)
	}
	if _, err := drain.PlanDrain(s, "src", drain.Threshold{MaxFiles: 1}, &drain.DrainOpts{MaxMoves: 2}); err != nil {
		t.Errorf("MaxMoves 2 is enough: %v", err)
	}
}

func TestPlanDrainBadInput(t *testing.T) {
	good := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("a", fleet.Limits{}, tenant("x", 1, 0, 0)), instance("b", fleet.Limits{MaxFiles: 9}),
	}}
	th := drain.Threshold{MaxFiles: 1}
	for _, tc := range []struct {
		name string
		s    *drain.Snapshot
		id   string
		th   drain.Threshold
		opts *drain.DrainOpts
		want string
	}{
		{"nil snapshot", nil, "a", th, nil, "no instances"},
		{"unknown instance", good, "c", th, nil, `instance to drain "c"`},
		{"zero threshold", good, "a", drain.Threshold{}, nil, "sets no limit"},
		{"negative threshold", good, "a", drain.Threshold{MaxBytes: -1}, nil, "negative"},
		{"negative MaxMoves", good, "a", th, &drain.DrainOpts{MaxMoves: -1}, "MaxMoves"},
		{"negative Concurrency", good, "a", th, &drain.DrainOpts{Concurrency: -2}, "Concurrency"},
		{"duplicate instance", &drain.Snapshot{Instances: []drain.InstanceUsage{instance("a", fleet.Limits{}), instance("a", fleet.Limits{})}},
			"a", th, nil, `instance "a" twice`},
		{"negative usage", &drain.Snapshot{Instances: []drain.InstanceUsage{instance("a", fleet.Limits{}, tenant("x", -1, 0, 0))}},
			"a", th, nil, `tenant "x" on "a" has negative usage`},
		{"negative limit", &drain.Snapshot{Instances: []drain.InstanceUsage{instance("a", fleet.Limits{MaxBytes: -5})}},
			"a", th, nil, `"a" has a negative limit`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := drain.PlanDrain(tc.s, tc.id, tc.th, tc.opts)
			if p != nil || !errors.Is(err, drain.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("PlanDrain = %v, %v; want no plan and ErrInvalid mentioning %q", p, err, tc.want)
			}
		})
	}
}

// clone deep-copies a snapshot, to check that planning left it alone.
func clone(s *drain.Snapshot) *drain.Snapshot {
	out := &drain.Snapshot{Instances: slices.Clone(s.Instances)}
	for i := range out.Instances {
		out.Instances[i].Tenants = slices.Clone(out.Instances[i].Tenants)
	}
	return out
}
