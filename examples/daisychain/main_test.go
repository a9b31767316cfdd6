package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/cutover/cutovertest"
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
	s, err := run(context.Background(), &out, options{json: true, quietSpell: cutovertest.QuietSpell()})
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

// TestDaisychainDryRun runs the example with -dry-run: it rehearses three
// tenants of different sizes, prints every stage's moves and conversions
// with estimates resting on those rehearsals, and moves nothing.
func TestDaisychainDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five instances and rehearses three moves: about a minute")
	}
	var out bytes.Buffer
	s, err := run(context.Background(), &out, options{dryRun: true})
	t.Logf("%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	r := s.DryRun
	if r == nil || len(r.Rehearsals) != 3 || r.Plan == nil || len(r.Plan.Stages) != 3 {
		t.Fatalf("dry run: %+v, want 3 rehearsals and a plan of 3 stages", r)
	}
	for i := 1; i < 3; i++ {
		if r.Rehearsals[i].Shape.Bytes <= r.Rehearsals[i-1].Shape.Bytes {
			t.Errorf("rehearsal %d of %d bytes after one of %d: want a sample of different sizes", i+1,
				r.Rehearsals[i].Shape.Bytes, r.Rehearsals[i-1].Shape.Bytes)
		}
	}
	// Every tenant is where it was created: tenant-0x on pg-1, 1x on pg-2, 2x on pg-3.
	if len(r.Placement) != 30 || s.TenantsMoved != 0 {
		t.Errorf("after the dry run the catalog places %d tenants, %d moved; want 30, none moved", len(r.Placement), s.TenantsMoved)
	}
	for id, inst := range r.Placement {
		if want := "pg-" + string('1'+id[len("tenant-")]-'0'); inst != want {
			t.Errorf("after the dry run %s is on %s, want %s", id, inst, want)
		}
	}
	report := out.String()
	for _, want := range []string{
		"the chain takes about",
		"convert pg-1 into pg-1.1 with",
		"estimates rest on:",
		"pg-1 -> pg-s: 3 measured runs of pg-1->pg-s (3 rehearsals)",
		"3 measured runs of fleet (3 rehearsals)",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the dry run's report does not say %q", want)
		}
	}
	for _, st := range r.Plan.Stages {
		for _, m := range append(slices.Clone(st.Drain.Moves), st.Refill.Moves...) {
			if m.Estimate <= 0 || m.EstimateLow > m.Estimate || m.EstimateHigh < m.Estimate {
				t.Errorf("stage %s: move of %s estimated %s (%s to %s)", st.Instance, m.Tenant, m.Estimate, m.EstimateLow, m.EstimateHigh)
			}
		}
		if st.Convert == nil || st.Convert.Total <= 0 {
			t.Errorf("stage %s: conversion estimated %+v", st.Instance, st.Convert)
		}
	}
}
