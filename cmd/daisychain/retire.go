package main

import (
	"context"
	"flag"
	"fmt"
)

func init() {
	register(&command{
		name:    "retire",
		args:    "<move-id>",
		summary: "end a done move's rollback period: drop the tenant's copy on the source",
		help: `Drops the tenant's database on the move's source instance, which the move
left fenced and intact as the way back, freeing its files and bytes there.
Refused, changing nothing, unless the move is done and both the catalog and
the published route have the tenant on the move's target. Retiring a retired
move does nothing.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, false)
			return func(ctx context.Context, inv *invocation) error {
				if len(inv.args) != 1 {
					return usagef("retire takes one move ID, got %d arguments", len(inv.args))
				}
				return withMover(ctx, inv, &mf, nil, func(h *fleetHandle) error {
					err := h.mover.Retire(ctx, inv.args[0])
					if inv.g.json {
						return writeDoc(inv, map[string]any{"move": inv.args[0], "retired": err == nil}, err)
					}
					if err == nil {
						fmt.Fprintf(inv.stdout, "move %s retired: its source copy is dropped\n", inv.args[0])
					}
					return err
				})
			}
		},
	})
}
