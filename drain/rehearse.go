package drain

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/daisychain-db/daisychain/cutover"
)

// RehearseTenantsDefault is how many tenants RehearseSample rehearses
// unless RehearseOpts says otherwise.
const RehearseTenantsDefault = 3

// RehearseOpts are optional arguments of RehearseSample; nil means
// defaults.
type RehearseOpts struct {
	// Tenants is how many tenants to rehearse. Default
	// RehearseTenantsDefault; negative is refused.
	Tenants int
}

// RehearseSample rehearses (cutover.Mover.Rehearse) a sample of an
// instance's tenants onto target, one after the other, so that the rate
// model of that pair rests on measurements before a drain or a chain is
// planned: the smallest tenant, the largest, and others evenly spread by
// size between them (the model fits each step as a line against size,
// which the spread pins down). It measures the one instance, not the
// fleet. Each rehearsal drops what it made; a failed one is in the
// joined error, and the others still run. It returns the reports of
// the rehearsals that ran, smallest first.
func (r *Runner) RehearseSample(ctx context.Context, instanceID, target string, opts *RehearseOpts) ([]*cutover.Report, error) {
	n := RehearseTenantsDefault
	if opts != nil && opts.Tenants != 0 {
		n = opts.Tenants
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: RehearseOpts.Tenants is %d: it must not be negative (0 means %d)", ErrInvalid, n, RehearseTenantsDefault)
	}
	if instanceID == target {
		return nil, fmt.Errorf("%w: rehearse onto %q, the tenants' own instance: name another target", ErrInvalid, target)
	}
	if _, err := r.cfg.Catalog.Instance(ctx, target); err != nil {
		return nil, fmt.Errorf("%w: rehearsal target: %w", ErrInvalid, err)
	}
	snap, err := r.measure(ctx, []string{instanceID})
	if err != nil {
		return nil, err
	}
	if len(snap.Instances) != 1 {
		return nil, fmt.Errorf("%w: instance %q is not in the catalog", ErrInvalid, instanceID)
	}
	tenants := slices.Clone(snap.Instances[0].Tenants)
	slices.SortStableFunc(tenants, func(a, b TenantUsage) int { return cmp.Compare(a.Bytes, b.Bytes) })
	var reports []*cutover.Report
	var errs []error
	for _, i := range spread(len(tenants), n) {
		rep, err := r.cfg.Mover.Rehearse(ctx, cutover.RehearseRequest{Tenant: tenants[i].ID, Target: target})
		if rep != nil {
			reports = append(reports, rep)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rehearse tenant %q: %w", tenants[i].ID, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return reports, errors.Join(errs...)
}

// spread picks n of count indexes evenly, first and last included.
func spread(count, n int) []int {
	if n >= count {
		n = count
	}
	out := make([]int, 0, n)
	for k := range n {
		i := 0
		if n > 1 {
			i = k * (count - 1) / (n - 1)
		}
		out = append(out, i)
	}
	return out
}
