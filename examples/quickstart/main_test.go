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
	if s["app_errors"] != 0.0 || s["missing_writes"] != 0.0 || s["rolled_back"] != false || s["acknowledged_writes"] == 0.0 {
		t.Errorf("quickstart: %s", out.String())
	}
	if bytes.Contains(out.Bytes(), []byte("secret")) {
		t.Error("the output shows a password")
	}
}
