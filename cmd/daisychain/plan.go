package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/daisychain-db/daisychain/drain"
)

// The dry runs: what a drain, a refill or a chain would move, measured
// from the live fleet, changing nothing.

func init() {
	register(&command{
		name:    "plan drain",
		args:    "<instance>",
		summary: "the moves a drain would make, with estimates; changes nothing",
		help: `Measures the instance and the instances that may receive its tenants (one
connection each), and prints the moves that would get it under --threshold,
smallest tenants first, each to the instance with the most headroom, with
the usage of every instance before and after, and an estimate of each move's
time and the drain's, with ranges, from the rate model of each instance pair
(its measured moves and rehearsals, else the fleet's, else the library's
defaults; the report says which). Nothing is changed. A threshold that
cannot be reached prints the partial plan, names the tenants that fit
nowhere, and exits 1.`,
		setup: drainSetup(func(ctx context.Context, inv *invocation, h *fleetHandle, inst string, th drain.Threshold, opts *drain.DrainOpts) error {
			plan, err := h.runner.DryRun(ctx, inst, th, opts)
			return printPlan(inv, stringer(plan), err)
		}),
	})
	register(&command{
		name:    "plan refill",
		args:    "<instance> --from <instance>[,<instance>...]",
		summary: "the moves a refill would make, with estimates; changes nothing",
		help: `Measures the instance and the sources, and prints the moves that would fill
it from them up to its limits (or --level), smallest tenants first, with the
usage before and after, and estimates with their basis as for plan drain.
Nothing is changed.`,
		setup: refillSetup(func(ctx context.Context, inv *invocation, h *fleetHandle, inst string, sources []string, lv drain.Threshold, opts *drain.RefillOpts) error {
			plan, err := h.runner.DryRunRefill(ctx, inst, sources, lv, opts)
			return printPlan(inv, stringer(plan), err)
		}),
	})
	register(&command{
		name:    "plan chain",
		args:    "<instance>... --spares <instance>[,<instance>...] --threshold <limits>",
		summary: "a daisy chain's stages (drain, convert, refill), with estimates; changes nothing",
		help: `Measures the instances and the spares, and prints each stage of the chain:
the drain of the instance under --threshold onto the spares and the
instances converted before it, its conversion, and the refill of the
converted instance from the spares, each move and conversion with its
estimate; then the most the spares hold at once, the chain's estimate
(drains, conversions and refills one after another) and what the estimates
rest on. Nothing is changed.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, true)
			var cf chainFlags
			cf.register(fs)
			return func(ctx context.Context, inv *invocation) error {
				req, err := cf.parse(inv.args)
				if err != nil {
					return err
				}
				return withMover(ctx, inv, &mf, nil, func(h *fleetHandle) error {
					plan, err := h.runner.DryRunChain(ctx, req)
					if plan != nil && len(plan.Stages) == 0 {
						plan = nil
					}
					return printPlan(inv, stringer(plan), err)
				})
			}
		},
	})
}

// stringer is p as a fmt.Stringer, or nil: never an interface holding a
// nil pointer.
func stringer[T any, P interface {
	*T
	fmt.Stringer
}](p P) fmt.Stringer {
	if p == nil {
		return nil
	}
	return p
}

// printPlan prints a dry run's plan (partial, if err says why it cannot
// be reached) and returns err.
func printPlan(inv *invocation, plan fmt.Stringer, err error) error {
	if inv.g.json {
		return writeDoc(inv, map[string]any{"plan": plan}, err)
	}
	if plan != nil {
		fmt.Fprint(inv.stdout, plan.String())
	}
	return err
}
