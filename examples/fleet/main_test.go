package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// TestMain is also the worker processes' main: the example re-executes
// its own binary (this test binary, here) with -worker.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-worker" {
		os.Exit(cli(os.Args[1:], os.Stdout))
	}
	goleak.VerifyTestMain(m)
}

// TestFleet runs the example as a user would, with -json and a few
// tenants, and checks what it promises: a worker killed in a move, every
// planned tenant moved in both runs (the killed worker's move included),
// no application error and no acknowledged write missing.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five instances and four worker processes")
	}
	const tenants = 8
	var out bytes.Buffer
	s, err := run(context.Background(), &out, options{tenants: tenants, asJSON: true,
		limits: limits{movesPerSource: 2, movesPerTarget: 2, quietSpell: cutovertest.QuietSpell()}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	var got map[string]any
	if err := json.Unmarshal(lines[len(lines)-1], &got); err != nil {
		t.Fatalf("the last line is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"tenants_moved", "workers", "workers_killed", "moves_resumed", "app_errors", "missing_writes",
		"seconds", "seconds_one_worker", "tenants_per_minute", "tenants_per_minute_one_worker"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON has no %q", k)
		}
	}
	t.Logf("%s", lines[len(lines)-1])
	if s.AppErrors != 0 || s.MissingWrites != 0 || s.MovesFailed != 0 {
		t.Errorf("%d application errors, %d acknowledged writes missing, %d moves failed", s.AppErrors, s.MissingWrites, s.MovesFailed)
	}
	if s.Workers != 3 || s.WorkersKilled != 1 || s.Killed == nil {
		t.Fatalf("%d workers, %d killed (%+v), want 3 and 1", s.Workers, s.WorkersKilled, s.Killed)
	}
	after := []cutover.Step{cutover.StepSwitch, cutover.StepCatalog, cutover.StepVerify, cutover.StepFinishStream}
	if !slices.Contains(after, s.Killed.Step) {
		t.Errorf("worker killed in %s at step %s, want after the switch", s.Killed.Move, s.Killed.Step)
	}
	if !s.Killed.Done {
		t.Errorf("the killed worker's move %s is not done", s.Killed.Move)
	}
	if s.TenantsMoved != tenants || s.TenantsMovedOneWorker != tenants {
		t.Errorf("moved %d tenants with three workers and %d with one, want %d each", s.TenantsMoved, s.TenantsMovedOneWorker, tenants)
	}
}

// TestFleetRefusesBadFlags: bad flags exit 2 before anything starts.
func TestFleetRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-tenants", "1"},
		{"-moves-per-source", "-1"},
		{"-quiet-spell", "-1s"},
	} {
		var out bytes.Buffer
		if code := cli(args, &out); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
