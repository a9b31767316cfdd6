package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDaisychain runs the example as a user would, with -json, and
// checks what it promises.
func TestDaisychain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole chain: about two minutes")
	}
	var out bytes.Buffer
	s, err := run(context.Background(), &out, true)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"tenants_moved", "instances_converted", "window_p50_ms", "window_max_ms", "conversions", "app_errors", "missing_writes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON has no %q", k)
		}
	}
	if s.AppErrors != 0 || s.MissingWrites != 0 || s.InstancesConverted != 3 || s.TenantsMoved == 0 || s.SpareTenantsAtEnd != 0 {
		t.Errorf("daisychain: %s", out.String())
	}
	// Each conversion is reported apart from the moves, with its tenants.
	if len(s.Conversions) != 3 {
		t.Errorf("%d conversions reported, want 3: %s", len(s.Conversions), out.String())
	}
	for _, c := range s.Conversions {
		if c.Tenants == 0 || c.WindowMS <= 0 || c.NewInstance == "" {
			t.Errorf("conversion %+v: want its tenants, window and new instance", c)
		}
	}
}
