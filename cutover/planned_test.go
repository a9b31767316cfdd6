package cutover

import (
	"encoding/json"
	"testing"
)

// TestPlannedIn: what a journal's plan moves, read for callers outside
// the package; no plan is not found; an unreadable one is an error.
func TestPlannedIn(t *testing.T) {
	detail, _ := json.Marshal(plan{Move: "m1", Tenant: "acme", Source: "pg-a", Target: "pg-b"})
	entries := []Entry{{Move: "m1", Step: StepPlan, Status: StatusStarted},
		{Move: "m1", Step: StepPlan, Status: StatusFinished, Detail: detail}}
	got, found, err := PlannedIn("m1", entries)
	if err != nil || !found || got != (Planned{Tenant: "acme", Source: "pg-a", Target: "pg-b"}) {
		t.Errorf("PlannedIn: %+v, %v, %v", got, found, err)
	}
	conv, _ := json.Marshal(plan{Kind: kindConvert, Move: "c1", Instance: "pg-a", NewInstance: "pg-a.1"})
	got, found, err = PlannedIn("c1", []Entry{{Move: "c1", Step: StepPlan, Status: StatusFinished, Detail: conv}})
	if err != nil || !found || !got.Conversion || got.NewInstance != "pg-a.1" {
		t.Errorf("PlannedIn of a conversion: %+v, %v, %v", got, found, err)
	}
	rev, _ := json.Marshal(plan{Kind: kindRevert, Move: "m1/revert-1", Reverts: "m1", Tenant: "acme", Source: "pg-b", Target: "pg-a"})
	got, found, err = PlannedIn("m1/revert-1", []Entry{{Move: "m1/revert-1", Step: StepPlan, Status: StatusFinished, Detail: rev}})
	if err != nil || !found || got != (Planned{Tenant: "acme", Source: "pg-b", Target: "pg-a", Reverts: "m1"}) {
		t.Errorf("PlannedIn of a revert: %+v, %v, %v", got, found, err)
	}
	if _, found, err := PlannedIn("m1", entries[:1]); found || err != nil {
		t.Errorf("no finished plan: found %v, %v", found, err)
	}
	bad := []Entry{{Move: "m1", Step: StepPlan, Status: StatusFinished, Detail: json.RawMessage(`"x"`)}}
	if _, _, err := PlannedIn("m1", bad); err == nil {
		t.Error("an unreadable plan was read")
	}
}
