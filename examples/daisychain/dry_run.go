package main

import (
	"context"
	"slices"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleet"
)

// dryRunReport is what -dry-run did: the rehearsals it timed and the
// chain's plan, estimated from them.
type dryRunReport struct {
	Rehearsals []*cutover.Measurement `json:"rehearsals"`
	Plan       *drain.ChainPlan       `json:"plan"`
	// Placement is the instance of each tenant in the catalog after the
	// dry run.
	Placement map[string]string `json:"placement"`
}

// dryRun rehearses a sample of tenants of different sizes (the
// smallest, the middle and the largest of the first instance) onto the
// spare, each timed step by step and dropped again, then plans the
// chain with estimates from those rehearsals. It moves nothing:
// TenantsMoved counts the tenants the catalog places elsewhere after it
// than before.
func dryRun(ctx context.Context, h *host.Host, runner *drain.Runner, req drain.ChainRequest, say func(string, ...any)) (summary, error) {
	var s summary
	before, err := placement(ctx, h.Catalog, req)
	if err != nil {
		return s, err
	}
	s.DryRun = &dryRunReport{}
	spare := req.Spares[0]
	say("rehearsing the smallest, a middle and the largest tenant of %s onto %s (each copied, caught up and timed, then dropped):",
		req.Instances[0], spare)
	reports, err := runner.RehearseSample(ctx, req.Instances[0], spare, &drain.RehearseOpts{Tenants: 3})
	if err != nil {
		return s, err
	}
	for _, rep := range reports {
		m := rep.Measurement
		s.DryRun.Rehearsals = append(s.DryRun.Rehearsals, m)
		say("  %-9s %6.1f MiB: %s (catch-up %s, window %s)", m.Tenant, float64(m.Shape.Bytes)/(1<<20), m.Total.Round(10*time.Millisecond),
			m.Step(cutover.StepCatchUp).Round(10*time.Millisecond), m.Window.Round(time.Millisecond))
	}
	if s.DryRun.Plan, err = runner.DryRunChain(ctx, req); err != nil {
		return s, err
	}
	say("\nthe chain's dry run:\n%s", s.DryRun.Plan)
	after, err := placement(ctx, h.Catalog, req)
	if err != nil {
		return s, err
	}
	s.DryRun.Placement = after
	for id, inst := range before {
		if after[id] != inst {
			s.TenantsMoved++
		}
	}
	say("tenants moved: %d (a dry run changes nothing)", s.TenantsMoved)
	return s, nil
}

// placement is where the catalog places each tenant of the chain's
// instances and spares.
func placement(ctx context.Context, c fleet.Catalog, req drain.ChainRequest) (map[string]string, error) {
	out := map[string]string{}
	for _, inst := range append(slices.Clone(req.Instances), req.Spares...) {
		on, err := c.Tenants(ctx, inst)
		if err != nil {
			return nil, err
		}
		for _, t := range on {
			out[t.ID] = inst
		}
	}
	return out, nil
}
