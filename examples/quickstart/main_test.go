package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstart runs the README's first command as a user would, with
// -json, and checks what it promises.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if _, err := run(context.Background(), &out, true, 4); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var s map[string]any
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"tenant", "window_ms", "library_window_ms", "app_errors", "acknowledged_writes", "missing_writes", "rolled_back"} {
		if _, ok := s[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, out.String())
		}
	}
	if s["window_ms"].(float64) > s["window_budget_ms"].(float64) {
		t.Errorf("the application waited longer than the window budget: %s", out.String())
	}
	if s["app_errors"] != 0.0 || s["missing_writes"] != 0.0 || s["rolled_back"] != false || s["acknowledged_writes"] == 0.0 {
		t.Errorf("quickstart: %s", out.String())
	}
	if bytes.Contains(out.Bytes(), []byte("secret")) {
		t.Error("the output shows a password")
	}
}

// TestProblems checks the exit decision: each failure is named, and a
// clean run has none.
func TestProblems(t *testing.T) {
	clean := summary{WindowMS: 80, WindowBudgetMS: 10000, AcknowledgedWrites: 10}
	if p := clean.problems(); len(p) != 0 {
		t.Errorf("clean run: %v", p)
	}
	for name, s := range map[string]summary{
		"rolled back": {RolledBack: true, RollbackReason: "over budget", WindowBudgetMS: 10000},
		"missing":     {MissingWrites: 1, WindowBudgetMS: 10000},
		"errors":      {AppErrors: 2, WindowBudgetMS: 10000},
		"over budget": {WindowMS: 10001, WindowBudgetMS: 10000},
	} {
		if p := s.problems(); len(p) != 1 {
			t.Errorf("%s: problems %v, want one", name, p)
		}
	}
}
