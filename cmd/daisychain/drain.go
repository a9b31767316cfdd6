package main

import (
	"context"

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
		setup: drainSetup(func(ctx context.Context, inv *invocation, h *fleetHandle, inst string, th drain.Threshold, opts *drain.DrainOpts) error {
			stop := startProgress(inv, h.mover, h.runner)
			res, err := h.runner.Drain(ctx, inst, th, opts)
			stop()
			return printRunResult(inv, "drain", inst, res, err)
		}),
	})
}
