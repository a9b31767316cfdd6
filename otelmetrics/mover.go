package otelmetrics

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/daisychain-db/daisychain/cutover"
)

// ScopeName is the instrumentation scope of the meter this package takes
// from the host's MeterProvider.
const ScopeName = "github.com/daisychain-db/daisychain"

// ErrInvalidConfig: New was given a Config it cannot work with; the error
// names the field.
var ErrInvalidConfig = errors.New("otelmetrics: invalid config")

// Config configures New.
type Config struct {
	// MeterProvider supplies the meter (ScopeName). Required: the host's,
	// never the global one.
	MeterProvider metric.MeterProvider
}

func (c *Config) validate() error {
	if c == nil || c.MeterProvider == nil {
		return fmt.Errorf("%w: Config.MeterProvider is nil: pass the host's metric.MeterProvider", ErrInvalidConfig)
	}
	return nil
}

// Metrics are daisychain's instruments on one meter. Observe a Mover to
// have its events recorded; one Metrics may observe several movers.
type Metrics struct {
	window       metric.Float64Histogram
	stepDuration metric.Float64Histogram
	stepFailures metric.Int64Counter
	moves        metric.Int64Counter
	active       metric.Int64UpDownCounter
	bytesCopied  metric.Int64Counter
	lag          metric.Int64Histogram
	dropped      metric.Int64Counter
}

// New creates the instruments.
func New(cfg *Config) (*Metrics, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	meter := cfg.MeterProvider.Meter(ScopeName)
	var m Metrics
	var errs [8]error
	m.window, errs[0] = meter.Float64Histogram("daisychain.window", metric.WithUnit("s"),
		metric.WithDescription("How long a move's or a conversion's writes were held"))
	m.stepDuration, errs[1] = meter.Float64Histogram("daisychain.step.duration", metric.WithUnit("s"),
		metric.WithDescription("How long a step of a move or a conversion ran"))
	m.stepFailures, errs[2] = meter.Int64Counter("daisychain.step.failures", metric.WithUnit("{step}"),
		metric.WithDescription("Steps of moves and conversions that failed"))
	m.moves, errs[3] = meter.Int64Counter("daisychain.moves", metric.WithUnit("{move}"),
		metric.WithDescription("Moves and conversions that ended, by outcome"))
	m.dropped, errs[4] = meter.Int64Counter("daisychain.events.dropped", metric.WithUnit("{event}"),
		metric.WithDescription("Mover events this package missed because it read them too slowly"))
	m.active, errs[5] = meter.Int64UpDownCounter("daisychain.moves.active", metric.WithUnit("{move}"),
		metric.WithDescription("Moves and conversions running (started or resumed, not yet ended)"))
	m.bytesCopied, errs[6] = meter.Int64Counter("daisychain.copy.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes the streams' initial copies wrote, as their progress reported"))
	m.lag, errs[7] = meter.Int64Histogram("daisychain.stream.lag", metric.WithUnit("By"),
		metric.WithDescription("How far streams were behind their sources, sampled at each progress report"))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("otelmetrics: create instruments: %w", err)
	}
	return &m, nil
}

// Observe records mover's events until stop is called; stop returns once
// the events received so far are recorded.
func (m *Metrics) Observe(mover *cutover.Mover) (stop func()) {
	events, unsubscribe := mover.Subscribe(cutover.EventStepStarted, cutover.EventStepFinished, cutover.EventWindowClosed,
		cutover.EventRolledBack, cutover.EventProgress)
	dropped := mover.EventsDropped()
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx := context.Background()
		// The moves running, and the bytes each had copied: bounded by
		// the moves in flight.
		running := map[string]int64{}
		for e := range events {
			m.record(ctx, e, running)
			if now := mover.EventsDropped(); now > dropped {
				m.dropped.Add(ctx, int64(now-dropped))
				dropped = now
			}
		}
		if n := len(running); n > 0 { // stopped while moves ran
			m.active.Add(ctx, int64(-n))
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			unsubscribe() // closes events
			wg.Wait()
		})
	}
}

var (
	outcomeDone       = metric.WithAttributes(attribute.String("daisychain.outcome", "done"))
	outcomeRolledBack = metric.WithAttributes(attribute.String("daisychain.outcome", "rolled_back"))
)

func (m *Metrics) record(ctx context.Context, e *cutover.Event, running map[string]int64) {
	if _, ok := running[e.Move]; !ok && e.Move != "" && !ends(e) {
		running[e.Move] = 0
		m.active.Add(ctx, 1)
	}
	switch e.Kind {
	case cutover.EventWindowClosed:
		m.window.Record(ctx, e.Elapsed.Seconds())
	case cutover.EventProgress:
		if p := e.Progress; p != nil {
			if d := p.BytesCopied - running[e.Move]; d > 0 {
				m.bytesCopied.Add(ctx, d)
				running[e.Move] = p.BytesCopied
			}
			m.lag.Record(ctx, p.LagBytes)
		}
	case cutover.EventRolledBack:
		m.moves.Add(ctx, 1, outcomeRolledBack)
	case cutover.EventStepFinished:
		step := metric.WithAttributes(attribute.String("daisychain.step", string(e.Step)))
		m.stepDuration.Record(ctx, e.Elapsed.Seconds(), step)
		switch {
		case e.Err != nil:
			m.stepFailures.Add(ctx, 1, step)
		case e.Step == cutover.StepDone:
			m.moves.Add(ctx, 1, outcomeDone)
		}
	}
	if _, ok := running[e.Move]; ok && ends(e) {
		delete(running, e.Move)
		m.active.Add(ctx, -1)
	}
}

// ends reports whether e ends a move: done, or rolled back.
func ends(e *cutover.Event) bool {
	return e.Kind == cutover.EventRolledBack || e.Kind == cutover.EventStepFinished && e.Step == cutover.StepDone && e.Err == nil
}
