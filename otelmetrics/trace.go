package otelmetrics

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/daisychain-db/daisychain/cutover"
)

// Trace records a mover's moves as spans through the host's
// TracerProvider (never the global one) until stop is called: a span
// "daisychain.move" per move or conversion, from its first step to its
// end, and a child span per step, named after it. Spans carry the move's
// and the tenant's IDs (daisychain.move, daisychain.tenant): a trace is
// one move, not a time series. A step that failed has an error status;
// a move that rolled back too. stop ends the spans still open.
func Trace(mover *cutover.Mover, provider trace.TracerProvider) (stop func()) {
	tracer := provider.Tracer(ScopeName)
	events, unsubscribe := mover.Subscribe(cutover.EventStepStarted, cutover.EventStepFinished, cutover.EventRolledBack)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := tracing{tracer: tracer, moves: map[string]*movingSpans{}}
		for e := range events {
			t.record(e)
		}
		for _, ms := range t.moves { // stopped while moves ran
			for _, s := range ms.steps {
				s.End()
			}
			ms.move.End()
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			unsubscribe()
			wg.Wait()
		})
	}
}

// tracing holds the spans of the moves running: bounded by them.
type tracing struct {
	tracer trace.Tracer
	moves  map[string]*movingSpans
}

type movingSpans struct {
	ctx   context.Context // the move span's
	move  trace.Span
	steps map[cutover.Step]trace.Span
}

func (t *tracing) record(e *cutover.Event) {
	ms := t.moves[e.Move]
	if ms == nil {
		if e.Kind != cutover.EventStepStarted {
			return // began before Trace was called
		}
		ctx, span := t.tracer.Start(context.Background(), "daisychain.move", trace.WithTimestamp(e.At),
			trace.WithAttributes(attribute.String("daisychain.move", e.Move), attribute.String("daisychain.tenant", e.Tenant)))
		ms = &movingSpans{ctx: ctx, move: span, steps: map[cutover.Step]trace.Span{}}
		t.moves[e.Move] = ms
	}
	switch e.Kind {
	case cutover.EventStepStarted:
		_, span := t.tracer.Start(ms.ctx, string(e.Step), trace.WithTimestamp(e.At))
		ms.steps[e.Step] = span
	case cutover.EventStepFinished:
		if span := ms.steps[e.Step]; span != nil {
			if e.Err != nil {
				span.SetStatus(codes.Error, e.Err.Error())
			}
			span.End(trace.WithTimestamp(e.At))
			delete(ms.steps, e.Step)
		}
		if e.Step == cutover.StepDone && e.Err == nil {
			ms.move.End(trace.WithTimestamp(e.At))
			delete(t.moves, e.Move)
		}
	case cutover.EventRolledBack:
		for _, span := range ms.steps {
			span.End(trace.WithTimestamp(e.At))
		}
		if e.Err != nil {
			ms.move.SetStatus(codes.Error, e.Err.Error())
		} else {
			ms.move.SetStatus(codes.Error, "rolled back")
		}
		ms.move.End(trace.WithTimestamp(e.At))
		delete(t.moves, e.Move)
	}
}
