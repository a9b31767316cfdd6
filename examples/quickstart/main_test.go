package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstart runs the README's first command as a user would, with
// -json, against local instances it reaches only by connection string,
// and checks what it promises.
func TestQuickstart(t *testing.T) {
	res, out := runLocal(t, false)
	var got result
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if p := res.problems(); len(p) > 0 {
		t.Errorf("the move did not hold its promises: %s\n%s", strings.Join(p, "; "), out.String())
	}
	if got.AcknowledgedWrites == 0 || got.Move == "" {
		t.Errorf("no writes acknowledged or no move ID: %s", out.String())
	}
	if strings.Contains(out.String(), "secret") {
		t.Error("the output shows a password")
	}
}

// TestQuickstartRevert runs it with -revert -json: the move, writes on
// the target, the revert, and every write on the source.
func TestQuickstartRevert(t *testing.T) {
	res, out := runLocal(t, true)
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	rev, _ := got["revert"].(map[string]any)
	for _, k := range []string{"window_ms", "library_window_ms", "app_errors", "missing_writes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, out.String())
		}
	}
	for _, k := range []string{"window_ms", "library_window_ms", "move"} {
		if _, ok := rev[k]; !ok {
			t.Errorf("JSON has no revert.%q: %s", k, out.String())
		}
	}
	if p := res.problems(); len(p) > 0 || res.Revert == nil {
		t.Errorf("the move and its revert did not hold their promises: %s\n%s", strings.Join(p, "; "), out.String())
	}
	t.Logf("%s", out.String())
}

// runLocal runs the quickstart with -json (and -revert) on local
// instances, and returns its result and output.
func runLocal(t *testing.T, revert bool) (result, *bytes.Buffer) {
	t.Helper()
	ctx := context.Background()
	o := options{Instances: instanceFlags{}, Tenant: "acme", Database: "acme", From: "pg-a", To: "pg-b", Writers: 4, Revert: revert, JSON: true,
		QuietSpell: cutovertest.QuietSpell()}
	stop, err := startLocal(ctx, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	var out bytes.Buffer
	res, err := run(ctx, &out, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return res, &out
}

// TestProblems checks the exit decision: each failure is named, and a
// clean run has none.
func TestProblems(t *testing.T) {
	clean := result{WindowMS: 80, WindowBudgetMS: 5000, AcknowledgedWrites: 10}
	if p := clean.problems(); len(p) != 0 {
		t.Errorf("clean run: %v", p)
	}
	for name, r := range map[string]result{
		"rolled back": {RolledBack: true, RollbackReason: "over budget", WindowBudgetMS: 5000},
		"missing":     {MissingWrites: 1, WindowBudgetMS: 5000},
		"errors":      {AppErrors: 2, FirstAppError: "boom", WindowBudgetMS: 5000},
		"over budget": {WindowMS: 5001, WindowBudgetMS: 5000},
	} {
		if p := r.problems(); len(p) != 1 {
			t.Errorf("%s: problems %v, want one", name, p)
		}
	}
}

// TestCommandLineChecked: a command line that names half a fleet is
// refused with what to add, before anything starts.
func TestCommandLineChecked(t *testing.T) {
	base := options{Instances: instanceFlags{}, Tenant: "acme", Database: "acme", From: "pg-a", To: "pg-b", Writers: 4}
	if err := base.check(); err != nil {
		t.Errorf("local run: %v", err)
	}
	for name, edit := range map[string]func(*options){
		"instance without control": func(o *options) { o.Instances["pg-a"] = "postgres://a" },
		"control without target":   func(o *options) { o.Control = "postgres://c"; o.Instances["pg-a"] = "postgres://a" },
		"same from and to":         func(o *options) { o.To = "pg-a" },
		"no writers":               func(o *options) { o.Writers = 0 },
	} {
		o := base
		o.Instances = instanceFlags{}
		edit(&o)
		if err := o.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
