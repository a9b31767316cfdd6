package otelmetrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/otelmetrics"
)

// TestObserveMover: a move that completes and one that fails at its
// catch-up, observed through the host's MeterProvider, give one window, one
// move done and one rolled back, the catch-up step's duration and its
// failure; no instrument carries a tenant's ID. Traced through the host's
// TracerProvider, each move is a span with a child span per step, and the
// failed step and move have an error status.
func TestObserveMover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := otelmetrics.New(nil); !errors.Is(err, otelmetrics.ErrInvalidConfig) {
		t.Errorf("New(nil) = %v, want ErrInvalidConfig", err)
	}
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for _, tn := range []string{"acme", "bolt"} {
		if err := f.AddTenant(ctx, tn, tn, "pg-a", "CREATE TABLE items (id serial PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
	}
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	metrics, err := otelmetrics.New(&otelmetrics.Config{MeterProvider: provider})
	if err != nil {
		t.Fatal(err)
	}
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second,
		BeforeStep: func(_ context.Context, moveID string, s cutover.Step) error {
			if moveID == "move-bolt" && s == cutover.StepCatchUp {
				return errors.New("stop here")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	stop := metrics.Observe(mover)
	spans := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tracer.Shutdown(context.Background()) })
	stopTrace := otelmetrics.Trace(mover, tracer)
	if _, err := mover.Move(ctx, cutover.Request{ID: "move-acme", Tenant: "acme", Target: "pg-b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := mover.Move(ctx, cutover.Request{ID: "move-bolt", Tenant: "bolt", Target: "pg-b"}); !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("the move failing at its catch-up: %v", err)
	}
	stop()
	stopTrace()
	checkSpans(t, spans.Ended())

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	if h, ok := got["daisychain.window"].(metricdata.Histogram[float64]); !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Count != 1 || h.DataPoints[0].Sum <= 0 {
		t.Errorf("daisychain.window = %+v, want one window of some length", got["daisychain.window"])
	}
	moves := sumsBy(t, got["daisychain.moves"], "daisychain.outcome")
	if moves["done"] != 1 || moves["rolled_back"] != 1 {
		t.Errorf("daisychain.moves by outcome = %v, want done 1, rolled_back 1", moves)
	}
	if failures := sumsBy(t, got["daisychain.step.failures"], "daisychain.step"); failures["catch_up"] != 1 {
		t.Errorf("daisychain.step.failures by step = %v, want catch_up 1", failures)
	}
	steps := map[string]uint64{}
	if h, ok := got["daisychain.step.duration"].(metricdata.Histogram[float64]); ok {
		for _, dp := range h.DataPoints {
			v, _ := dp.Attributes.Value("daisychain.step")
			steps[v.AsString()] = dp.Count
			if dp.Attributes.Len() != 1 {
				t.Errorf("step duration attributes %v, want the step only", dp.Attributes.ToSlice())
			}
		}
	}
	if active := sumsBy(t, got["daisychain.moves.active"], "none"); active[""] != 0 {
		t.Errorf("daisychain.moves.active = %v after both moves ended, want 0", active)
	}
	if _, ok := got["daisychain.moves.active"]; !ok {
		t.Error("daisychain.moves.active was never recorded")
	}
	if steps["catch_up"] != 2 || steps["switch"] != 1 {
		t.Errorf("daisychain.step.duration counts by step = %v, want catch_up 2, switch 1", steps)
	}
}

// sumsBy reads an Int64 sum's data points by the value of one attribute.
func sumsBy(t *testing.T, data metricdata.Aggregation, key attribute.Key) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	sum, ok := data.(metricdata.Sum[int64])
	if !ok {
		return out
	}
	for _, dp := range sum.DataPoints {
		v, _ := dp.Attributes.Value(key)
		out[v.AsString()] += dp.Value
	}
	return out
}

// checkSpans: a "daisychain.move" span per move, naming its tenant, the
// rolled-back one in error; step spans are children of their move's span,
// catch_up of both, failed in bolt's.
func checkSpans(t *testing.T, ended []sdktrace.ReadOnlySpan) {
	t.Helper()
	moves := map[string]sdktrace.ReadOnlySpan{} // by tenant
	for _, s := range ended {
		if s.Name() != "daisychain.move" {
			continue
		}
		for _, a := range s.Attributes() {
			if a.Key == "daisychain.tenant" {
				moves[a.Value.AsString()] = s
			}
		}
	}
	acme, bolt := moves["acme"], moves["bolt"]
	if acme == nil || bolt == nil {
		t.Fatalf("move spans by tenant: %v, want acme and bolt", moves)
	}
	if acme.Status().Code == codes.Error || bolt.Status().Code != codes.Error {
		t.Errorf("move span status: acme %v, bolt %v; want bolt's only in error", acme.Status(), bolt.Status())
	}
	catchUps, switches := 0, 0
	for _, s := range ended {
		switch s.Name() {
		case "catch_up":
			catchUps++
			if s.Parent().SpanID() == bolt.SpanContext().SpanID() && s.Status().Code != codes.Error {
				t.Errorf("bolt's catch_up span: status %v, want an error", s.Status())
			}
		case "switch":
			switches++
			if s.Parent().SpanID() != acme.SpanContext().SpanID() {
				t.Errorf("the switch span's parent is %v, want acme's move span", s.Parent().SpanID())
			}
		}
	}
	if catchUps != 2 || switches != 1 {
		t.Errorf("%d catch_up and %d switch spans, want 2 and 1", catchUps, switches)
	}
}
