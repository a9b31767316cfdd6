package drain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
)

// MeasureConcurrencyDefault is how many instances Measure measures at
// once unless MeasureOpts says otherwise: each holds one connection to
// its instance, and most of the time goes to the activity sample.
const MeasureConcurrencyDefault = 8

// MeasureOpts are optional arguments of Measure; nil means defaults.
type MeasureOpts struct {
	// Interval over which each instance's activity is sampled; passed to
	// fleet.UsageOpts. Default fleet.UsageIntervalDefault; negative skips
	// sampling and every TPS is zero.
	Interval time.Duration
	// Concurrency is how many instances are measured at once. Default
	// MeasureConcurrencyDefault.
	Concurrency int
}

// Measure builds a Snapshot of every instance in the catalog, measuring
// each catalogued tenant's database with fleet.MeasureUsage. Instances
// are in the catalog's order (by ID), tenants too. An instance without
// tenants is in the snapshot with none and is not connected to. If any
// instance cannot be measured, Measure returns no snapshot and an error
// naming every instance that failed.
func Measure(ctx context.Context, catalog fleet.Catalog, opts *MeasureOpts) (*Snapshot, error) {
	var o MeasureOpts
	if opts != nil {
		o = *opts
	}
	if o.Concurrency < 0 {
		return nil, fmt.Errorf("%w: MeasureOpts.Concurrency %d is negative", ErrInvalid, o.Concurrency)
	}
	if o.Concurrency == 0 {
		o.Concurrency = MeasureConcurrencyDefault
	}
	instances, err := catalog.Instances(ctx)
	if err != nil {
		return nil, fmt.Errorf("drain: measure: %w", err)
	}
	snap := &Snapshot{Instances: make([]InstanceUsage, len(instances))}
	errs := make([]error, len(instances))
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i, inst := range instances {
		snap.Instances[i].Instance = inst
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			tenants, err := measureInstance(ctx, catalog, inst, o.Interval)
			if err != nil {
				errs[i] = err
				cancel() // the snapshot is incomplete anyway
				return
			}
			snap.Instances[i].Tenants = tenants
		})
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return nil, fmt.Errorf("drain: measure: %w", err)
	}
	// Instances cut short because another failed add only noise.
	var failed []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return nil, errors.Join(failed...)
	}
	return snap, nil
}

func measureInstance(ctx context.Context, catalog fleet.Catalog, inst fleet.Instance, interval time.Duration) ([]TenantUsage, error) {
	tenants, err := catalog.Tenants(ctx, inst.ID)
	if err != nil {
		return nil, fmt.Errorf("drain: tenants of %s: %w", inst, err)
	}
	if len(tenants) == 0 {
		// MeasureUsage would discover databases instead.
		return nil, nil
	}
	dbs := make([]string, len(tenants))
	for i, t := range tenants {
		dbs[i] = t.Database
	}
	usage, err := fleet.MeasureUsage(ctx, inst, &fleet.UsageOpts{Databases: dbs, Interval: interval})
	if err != nil {
		return nil, err
	}
	out := make([]TenantUsage, len(tenants))
	for i, t := range tenants {
		// MeasureUsage answers in the order of Databases.
		out[i] = TenantUsage{ID: t.ID, Usage: usage[i]}
	}
	return out, nil
}
