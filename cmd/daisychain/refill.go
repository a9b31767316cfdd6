package main

import (
	"context"
	"flag"

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
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, true)
			from := fs.String("from", "", "comma-separated instances to take tenants from (required)")
			level := fs.String("level", "", "fill up to this instead of the instance's limits: "+limitsSyntax)
			maxMoves := fs.Int("max-moves", 0, "cap on the moves (0: none)")
			return func(ctx context.Context, inv *invocation) error {
				inst, sources, lv, err := refillArgs(inv, *from, *level, *maxMoves)
				if err != nil {
					return err
				}
				return withMover(ctx, inv, &mf, converterFlags{}, func(h *fleetHandle) error {
					stop := startProgress(inv, h.mover, h.runner)
					res, err := h.runner.Refill(ctx, inst, sources, lv, &drain.RefillOpts{MaxMoves: *maxMoves})
					stop()
					return printRunResult(inv, "refill", inst, res, err)
				})
			}
		},
	})
}
