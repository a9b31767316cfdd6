package main

import (
	"context"

	"github.com/daisychain-db/daisychain/drain"
)

func init() {
	register(&command{
		name:    "refill",
		args:    "<instance> --from <instance>[,<instance>...]",
		summary: "move tenants onto an instance from others, up to its limits",
		help: `Measures the instance and the sources, plans as "plan refill" does, and
moves the tenants, --concurrency at a time, each through the same steps as
"move"; each moved tenant's source copy is retired once its move is done
(--keep-sources keeps them for "retire"). Prints each move's outcome, window
and bytes; exit 1 if any move failed (the others still ran).

` + ctrlCNote,
		setup: refillSetup(func(ctx context.Context, inv *invocation, h *fleetHandle, inst string, sources []string, lv drain.Threshold, opts *drain.RefillOpts) error {
			stop := startProgress(inv, h.mover, h.runner)
			res, err := h.runner.Refill(ctx, inst, sources, lv, opts)
			stop()
			return printRunResult(inv, "refill", inst, res, err)
		}),
	})
}
