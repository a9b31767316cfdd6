// Package otelmetrics records what daisychain's movers do as OpenTelemetry
// metrics and spans, through a MeterProvider and a TracerProvider the host
// gives (never the global ones): the windows, each step's duration and
// failures, and how moves end.
//
// It follows a cutover.Mover's events (Mover.Subscribe), which never
// block a move: a slow exporter loses events rather than slowing a window
// (Mover.EventsDropped counts them, and so does the
// daisychain.events.dropped counter).
//
// No instrument carries a tenant's or a move's ID: a fleet has millions,
// and an attribute per tenant would make as many time series. Steps and
// outcomes are the attributes; the journal and the reports say which
// tenant.
//
// Instruments (names, units, attributes):
//
//   - daisychain.window (s): how long writes were held, per window.
//   - daisychain.step.duration (s), attribute daisychain.step: each step
//     that ran, and daisychain.step.failures (count) for each that failed.
//   - daisychain.moves (count), attribute daisychain.outcome ("done" or
//     "rolled_back"): moves and conversions that ended.
//   - daisychain.moves.active (count, up and down): moves and conversions
//     running in the movers observed.
//   - daisychain.copy.bytes (By): bytes the initial copies wrote.
//   - daisychain.stream.lag (By): how far streams were behind their
//     sources, at each progress report (about once a second a move).
//   - daisychain.events.dropped (count): events this package missed.
//
// Trace records each move as a span ("daisychain.move", with the move's
// and the tenant's IDs: a trace is one move, not a time series) and each
// of its steps as a child span, through the host's TracerProvider.
package otelmetrics
