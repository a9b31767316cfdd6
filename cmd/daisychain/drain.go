package main

import (
	"context"
	"flag"

	"github.com/daisychain-db/daisychain/drain"
)

func init() {
	register(&command{
		name:    "drain",
		args:    "<instance> --threshold <limits>",
		summary: "move tenants off an instance until it is under a threshold",
		help: `Measures the fleet, plans as "plan drain" does, and moves the tenants,
--concurrency at a time, each through the same steps as "move"; each moved
tenant's source copy is retired once its move is done (--keep-sources keeps
them for "retire"). A plan that cannot reach the threshold moves nothing.
Prints each move's outcome, window and bytes; exit 1 if any move failed (the
others still ran) or the threshold does not hold after.

` + ctrlCNote,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, true)
			threshold := fs.String("threshold", "", "drain until the instance holds at most this: "+limitsSyntax)
			exclude := fs.String("exclude", "", "comma-separated instances that must receive no tenant")
			onto := fs.String("onto", "", "comma-separated instances that alone may receive tenants (default: any registered)")
			maxMoves := fs.Int("max-moves", 0, "cap on the moves (0: none)")
			return func(ctx context.Context, inv *invocation) error {
				if len(inv.args) != 1 {
					return usagef("drain takes one instance, got %d arguments", len(inv.args))
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
					stop := startProgress(inv, h.mover, h.runner)
					res, err := h.runner.Drain(ctx, inv.args[0], th, opts)
					stop()
					return printRunResult(inv, "drain", inv.args[0], res, err)
				})
			}
		},
	})
}
