package drain

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// Files is how relation files are counted; passed to
	// fleet.UsageOpts. Default fleet.FileCountingAuto: by listing the
	// data directory, through one connection per instance, where the
	// Admin role may.
	Files fleet.FileCounting
	// Instances restricts the snapshot to the instances with these IDs,
	// each of which must be in the catalog. Default: every instance in
	// the catalog. A plan sees only the instances of its snapshot, so
	// leave out only those it must not touch. A Runner sets it to the
	// instances each plan involves.
	Instances []string
}

// Measure builds a Snapshot of the instances in the catalog (or those
// opts.Instances names), in the catalog's order (by ID), measuring each
// with fleet.MeasureInstance: one connection per instance where its Admin
// role may list the data directory. Each instance's catalogued tenants
// are its Tenants, in the catalog's order; every other database on it
// that counts against its Limits (a copy fenced by a move and awaiting
// Retire, a database a move is creating, one no catalog knows) is in
// Other, so what is on disk counts. If any instance cannot be measured,
// Measure returns no snapshot and an error naming every instance that
// failed.
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
	if err := o.Files.Validate(); err != nil {
		return nil, fmt.Errorf("%w: MeasureOpts.Files: %w", ErrInvalid, err)
	}
	instances, err := catalog.Instances(ctx)
	if err != nil {
		return nil, fmt.Errorf("drain: measure: %w", err)
	}
	if o.Instances != nil {
		if instances, err = only(instances, o.Instances); err != nil {
			return nil, err
		}
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
			if err := measureInstance(ctx, catalog, &snap.Instances[i], &o); err != nil {
				errs[i] = err
				cancel() // the snapshot is incomplete anyway
			}
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

// only keeps the instances with the IDs, in their order; an ID not among
// them is an error.
func only(instances []fleet.Instance, ids []string) ([]fleet.Instance, error) {
	wanted := make(map[string]bool, len(ids))
	for _, id := range ids {
		wanted[id] = true
	}
	found := make(map[string]bool, len(ids))
	kept := slices.DeleteFunc(instances, func(inst fleet.Instance) bool {
		found[inst.ID] = wanted[inst.ID]
		return !wanted[inst.ID]
	})
	for _, id := range ids {
		if !found[id] {
			return nil, fmt.Errorf("%w: instance %q is not in the catalog", ErrInvalid, id)
		}
	}
	return kept, nil
}

// measureInstance fills in iu's tenants and other databases from one
// measure of the instance.
func measureInstance(ctx context.Context, catalog fleet.Catalog, iu *InstanceUsage, o *MeasureOpts) error {
	inst := iu.Instance
	tenants, err := catalog.Tenants(ctx, inst.ID)
	if err != nil {
		return fmt.Errorf("drain: tenants of %s: %w", inst, err)
	}
	m, err := fleet.MeasureInstance(ctx, inst, &fleet.UsageOpts{Interval: o.Interval, Files: o.Files})
	if err != nil {
		return err
	}
	on := make(map[string]fleet.Usage, len(m.Databases))
	for _, u := range m.Databases {
		on[u.Database] = u
	}
	iu.Tenants = make([]TenantUsage, len(tenants))
	for i, t := range tenants {
		u, ok := on[t.Database]
		if !ok {
			return fmt.Errorf("drain: tenant %q: %w: %q is not on %s: fix the catalog",
				t.ID, fleet.ErrDatabaseNotFound, t.Database, inst)
		}
		iu.Tenants[i] = TenantUsage{ID: t.ID, Usage: u}
		delete(on, t.Database)
	}
	for _, u := range m.Databases {
		if _, left := on[u.Database]; left && u.CountsAgainstLimits() {
			iu.Other = append(iu.Other, u)
		}
	}
	// A threshold that holds without them may not hold on disk.
	return fleet.FilesUncountedError(inst, m.Held().FilesUncounted)
}

// measure measures, for one pass of the runner, the instances with the
// IDs: those its plan involves, and no others.
func (r *Runner) measure(ctx context.Context, ids []string) (*Snapshot, error) {
	o := *r.cfg.Measure
	o.Instances = ids
	return Measure(ctx, r.cfg.Catalog, &o)
}

// drainPass returns the instances a drain of instanceID involves (it and
// every catalog instance its tenants may go to, that is every one not
// excluded) and the options to plan it with on their snapshot. An
// excluded ID that is not in the catalog is refused, as PlanDrain refuses
// one that is not in its snapshot, so that a typo cannot let tenants
// through.
func (r *Runner) drainPass(ctx context.Context, instanceID string, opts *DrainOpts) ([]string, DrainOpts, error) {
	var o DrainOpts
	if opts != nil {
		o = *opts
	}
	var err error
	if o.Concurrency, err = r.planConcurrency("DrainOpts", o.Concurrency); err != nil {
		return nil, o, err
	}
	all, err := r.candidates(ctx, instanceID, o.Onto)
	if err != nil {
		return nil, o, err
	}
	excluded := make(map[string]bool, len(o.Exclude))
	for _, id := range o.Exclude {
		excluded[id] = true
	}
	var ids []string
	for _, inst := range all {
		if inst.ID == instanceID || !excluded[inst.ID] {
			ids = append(ids, inst.ID)
		}
		delete(excluded, inst.ID)
	}
	for _, id := range o.Exclude {
		if excluded[id] {
			return nil, o, fmt.Errorf("%w: excluded instance %q is not in the catalog", ErrInvalid, id)
		}
	}
	// The excluded instances are not measured, so not in the snapshot:
	// no tenant can be planned onto them.
	o.Exclude, o.Onto = nil, nil
	return ids, o, nil
}

// candidates are the instances a drain of instanceID may involve: onto
// and instanceID if onto is set (each must be in the catalog), else every
// instance of the catalog.
func (r *Runner) candidates(ctx context.Context, instanceID string, onto []string) ([]fleet.Instance, error) {
	if len(onto) == 0 {
		all, err := r.cfg.Catalog.Instances(ctx)
		if err != nil {
			return nil, fmt.Errorf("drain: measure: %w", err)
		}
		return all, nil
	}
	out := make([]fleet.Instance, 0, len(onto)+1)
	for _, id := range append([]string{instanceID}, onto...) {
		inst, err := r.cfg.Catalog.Instance(ctx, id)
		if errors.Is(err, fleet.ErrInstanceNotFound) && id == instanceID {
			return nil, fmt.Errorf("%w: the instance to drain, %q, is not in the catalog", ErrInvalid, id)
		}
		if errors.Is(err, fleet.ErrInstanceNotFound) {
			return nil, fmt.Errorf("%w: DrainOpts.Onto: instance %q is not in the catalog", ErrInvalid, id)
		}
		if err != nil {
			return nil, fmt.Errorf("drain: measure: %w", err)
		}
		out = append(out, inst)
	}
	return out, nil
}
