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

func TestPlanRefillFillsUpToLimits(t *testing.T) {
	s := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("dst", fleet.Limits{MaxFiles: 100, MaxTenants: 4}, tenant("home", 10, 0, 0)),
		instance("s1", fleet.Limits{}, tenant("a30", 30, 0, 0), tenant("a50", 50, 0, 0), tenant("a1", 1, 0, 0)),
		instance("s2", fleet.Limits{}, tenant("b40", 40, 0, 0), tenant("b5", 5, 0, 0)),
		instance("s3", fleet.Limits{}, tenant("c1", 1, 0, 0)),
	}}
	before := clone(s)
	// In order a1 (11), b5 (16), a30 (46), b40 (86): the tenant limit is
	// reached; a50 would not have fitted anyway. s3 is not a source.
	p, err := drain.PlanRefill(s, "dst", []string{"s1", "s2"}, drain.Threshold{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moved(p), []string{"a1->dst", "b5->dst", "a30->dst"}; !slices.Equal(got, want) {
		t.Fatalf("moves %v, want %v", got, want)
	}
	if d := affected(t, p, "dst"); d.After != (drain.Totals{Tenants: 4, Files: 46}) {
		t.Errorf("dst after %+v, want 4 tenants and 46 files", d.After)
	}
	if !slices.Equal(p.Sources, []string{"s1", "s2"}) || p.Kind != drain.KindRefill {
		t.Errorf("plan kind %s sources %v", p.Kind, p.Sources)
	}

	// Only a files limit: b40 (86 files) and a50 would exceed it.
	s.Instances[0].Instance.Limits = fleet.Limits{MaxFiles: 60}
	p, err = drain.PlanRefill(s, "dst", []string{"s1", "s2"}, drain.Threshold{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moved(p), []string{"a1->dst", "b5->dst", "a30->dst"}; !slices.Equal(got, want) {
		t.Fatalf("files limit: moves %v, want %v", got, want)
	}
	s.Instances[0].Instance.Limits = fleet.Limits{MaxFiles: 100}
	p, err = drain.PlanRefill(s, "dst", []string{"s2", "s1"}, drain.Threshold{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 10+1+5+30 = 46; b40 gives 86; a50 does not fit; nothing else left.
	if got, want := moved(p), []string{"a1->dst", "b5->dst", "a30->dst", "b40->dst"}; !slices.Equal(got, want) {
		t.Fatalf("files limit 100: moves %v, want %v", got, want)
	}

	// A level under the limits stops earlier.
	p, err = drain.PlanRefill(s, "dst", []string{"s1", "s2"}, drain.Threshold{MaxFiles: 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moved(p), []string{"a1->dst", "b5->dst"}; !slices.Equal(got, want) {
		t.Fatalf("level of 20 files: moves %v, want %v", got, want)
	}
	s.Instances[0].Instance.Limits = fleet.Limits{MaxFiles: 100, MaxTenants: 4}
	if !reflect.DeepEqual(s, before) {
		t.Error("PlanRefill changed the snapshot")
	}
}

func TestPlanRefillBadInput(t *testing.T) {
	s := &drain.Snapshot{Instances: []drain.InstanceUsage{
		instance("dst", fleet.Limits{MaxFiles: 100}), instance("open", fleet.Limits{}), instance("src", fleet.Limits{}, tenant("x", 1, 0, 0)),
	}}
	for _, tc := range []struct {
		name    string
		id      string
		sources []string
		level   drain.Threshold
		want    string
	}{
		{"no sources", "dst", nil, drain.Threshold{}, "names no source"},
		{"unknown source", "dst", []string{"nope"}, drain.Threshold{}, `source instance "nope"`},
		{"source is target", "dst", []string{"src", "dst"}, drain.Threshold{}, "both the instance to refill and a source"},
		{"source twice", "dst", []string{"src", "src"}, drain.Threshold{}, "listed twice"},
		{"no limits, no level", "open", []string{"src"}, drain.Threshold{}, "no limits and no refill level"},
		{"negative level", "dst", []string{"src"}, drain.Threshold{MaxTenants: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := drain.PlanRefill(s, tc.id, tc.sources, tc.level, nil)
			if p != nil || !errors.Is(err, drain.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("PlanRefill = %v, %v; want no plan and ErrInvalid mentioning %q", p, err, tc.want)
			}
		})
	}
	// Without limits, a level is enough.
	if p, err := drain.PlanRefill(s, "open", []string{"src"}, drain.Threshold{MaxTenants: 1}, nil); err != nil || len(p.Moves) != 1 {
		t.Errorf("refill of an unlimited instance to a level: %v, %v", p, err)
	}
}
