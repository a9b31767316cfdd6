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
the usage of every instance before and after and an estimate of the time the
moves take (from measured sizes). Nothing is changed. A threshold that
cannot be reached prints the partial plan, names the tenants that fit
nowhere, and exits 1.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, true)
			threshold := fs.String("threshold", "", "drain until the instance holds at most this: "+limitsSyntax)
			exclude := fs.String("exclude", "", "comma-separated instances that must receive no tenant")
			onto := fs.String("onto", "", "comma-separated instances that alone may receive tenants (default: any registered)")
			maxMoves := fs.Int("max-moves", 0, "cap on the plan's moves (0: none)")
			return func(ctx context.Context, inv *invocation) error {
				if len(inv.args) != 1 {
					return usagef("plan drain takes one instance, got %d arguments", len(inv.args))
				}
				th, err := parseLimits("threshold", *threshold)
				if err != nil {
					return err
				}
				if *maxMoves < 0 {
					return usagef("--max-moves %d: give 0 (no cap) or more", *maxMoves)
				}
				opts := &drain.DrainOpts{Exclude: splitList(*exclude), Onto: splitList(*onto), MaxMoves: *maxMoves}
				return withMover(ctx, inv, &mf, converterFlags{}, func(h *fleetHandle) error {
					plan, err := h.runner.DryRun(ctx, inv.args[0], th, opts)
					return printPlan(inv, stringer(plan), err)
				})
			}
		},
	})
	register(&command{
		name:    "plan refill",
		args:    "<instance> --from <instance>[,<instance>...]",
		summary: "the moves a refill would make, with estimates; changes nothing",
		help: `Measures the instance and the sources, and prints the moves that would fill
it from them up to its limits (or --level), smallest tenants first, with the
usage before and after and an estimate of the time. Nothing is changed.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, true)
			from := fs.String("from", "", "comma-separated instances to take tenants from (required)")
			level := fs.String("level", "", "fill up to this instead of the instance's limits: "+limitsSyntax)
			maxMoves := fs.Int("max-moves", 0, "cap on the plan's moves (0: none)")
			return func(ctx context.Context, inv *invocation) error {
				inst, sources, lv, err := refillArgs(inv, *from, *level, *maxMoves)
				if err != nil {
					return err
				}
				return withMover(ctx, inv, &mf, converterFlags{}, func(h *fleetHandle) error {
					plan, err := h.runner.DryRunRefill(ctx, inst, sources, lv, &drain.RefillOpts{MaxMoves: *maxMoves})
					return printPlan(inv, stringer(plan), err)
				})
			}
		},
	})
	register(&command{
		name:    "plan chain",
		args:    "<instance>... --spares <instance>[,<instance>...] --threshold <limits>",
		summary: "a daisy chain's stages (drain, convert, refill), with estimates; changes nothing",
		help: `Measures the instances and the spares, and prints each stage of the chain:
the drain of the instance under --threshold onto the spares and the
instances converted before it, its conversion, and the refill of the
converted instance from the spares; then the most the spares hold at once
and an estimate of the moves' time (conversions not included). Nothing is
changed.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, true)
			spares := fs.String("spares", "", "comma-separated spare instances (required)")
			threshold := fs.String("threshold", "", "drain each instance under this before converting it: "+limitsSyntax)
			return func(ctx context.Context, inv *invocation) error {
				req, err := chainArgs(inv, *spares, *threshold)
				if err != nil {
					return err
				}
				return withMover(ctx, inv, &mf, converterFlags{}, func(h *fleetHandle) error {
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

// refillArgs checks a refill's arguments.
func refillArgs(inv *invocation, from, level string, maxMoves int) (string, []string, drain.Threshold, error) {
	if len(inv.args) != 1 {
		return "", nil, drain.Threshold{}, usagef("takes one instance to refill, got %d arguments", len(inv.args))
	}
	sources := splitList(from)
	if len(sources) == 0 {
		return "", nil, drain.Threshold{}, usagef("--from is missing: name the instances to take tenants from")
	}
	var lv drain.Threshold
	if level != "" {
		var err error
		if lv, err = parseLimits("level", level); err != nil {
			return "", nil, drain.Threshold{}, err
		}
	}
	if maxMoves < 0 {
		return "", nil, drain.Threshold{}, usagef("--max-moves %d: give 0 (no cap) or more", maxMoves)
	}
	return inv.args[0], sources, lv, nil
}

// chainArgs checks a chain's arguments.
func chainArgs(inv *invocation, spares, threshold string) (drain.ChainRequest, error) {
	if len(inv.args) == 0 {
		return drain.ChainRequest{}, usagef("name the instances of the chain, in order")
	}
	req := drain.ChainRequest{Instances: inv.args, Spares: splitList(spares)}
	if len(req.Spares) == 0 {
		return drain.ChainRequest{}, usagef("--spares is missing: name the spare instances that hold the tenants of each stage")
	}
	var err error
	if req.Threshold, err = parseLimits("threshold", threshold); err != nil {
		return drain.ChainRequest{}, err
	}
	return req, nil
}

// printPlan prints a dry run's plan (partial, if err says why it cannot
// be reached) and returns err.
func printPlan(inv *invocation, plan fmt.Stringer, err error) error {
	if inv.g.json {
		doc := map[string]any{"plan": plan}
		if err != nil {
			doc["error"] = err.Error()
		}
		if jerr := writeJSON(inv.stdout, doc); jerr != nil {
			return jerr
		}
		return err
	}
	if plan != nil {
		fmt.Fprint(inv.stdout, plan.String())
	}
	return err
}
