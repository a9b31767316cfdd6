package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/otelmetrics"
)

// serveMetrics serves the mover's metrics (package otelmetrics) at
// http://addr/metrics in Prometheus' format, through the OpenTelemetry
// SDK and its Prometheus exporter, on a registry of its own (not the
// global one), until stop. Only this command imports the SDK and the
// exporter: the library depends on the OpenTelemetry API alone.
func serveMetrics(addr string, mover *cutover.Mover) (stop func() error, err error) {
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), metricViews())
	metrics, err := otelmetrics.New(&otelmetrics.Config{MeterProvider: provider})
	if err != nil {
		return nil, errors.Join(err, provider.Shutdown(context.Background()))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errors.Join(usagef("--metrics-listen %q: cannot listen there (%v): give a free host:port, as 127.0.0.1:9464", addr, err),
			provider.Shutdown(context.Background()))
	}
	endObserve := metrics.Observe(mover)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return func() error {
		// The observer first: its last events are recorded before the
		// endpoint goes.
		endObserve()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return errors.Join(err, provider.Shutdown(ctx))
	}, nil
}

// metricViews sets histogram buckets that fit what is measured: the SDK's
// default ones (0 to 10000) suit milliseconds, and these instruments are
// in seconds and bytes.
func metricViews() sdkmetric.Option {
	seconds := sdkmetric.AggregationExplicitBucketHistogram{Boundaries: []float64{
		0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600, 1800, 3600}}
	bytes := sdkmetric.AggregationExplicitBucketHistogram{Boundaries: []float64{
		1 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20, 1 << 30, 16 << 30}}
	view := func(name string, agg sdkmetric.Aggregation) sdkmetric.View {
		return sdkmetric.NewView(sdkmetric.Instrument{Name: name}, sdkmetric.Stream{Aggregation: agg})
	}
	return sdkmetric.WithView(
		view("daisychain.window", seconds),
		view("daisychain.step.duration", seconds),
		view("daisychain.stream.lag", bytes))
}
