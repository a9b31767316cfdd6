package main

import (
	"context"
	"flag"

	"github.com/daisychain-db/daisychain/cutover"
)

func init() {
	register(&command{
		name:    "move",
		args:    "<tenant> <target-instance>",
		summary: "move one tenant to another instance",
		help: `Moves the tenant's database to the target instance: preflight (read-only),
copy and catch-up (progress on a terminal), then the window, in which writes
are held, the source is fenced and the route switches to the target; then
the catalog, and the stream's cleanup. Prints the report: window, bytes
copied, each step's time. The source copy stays, fenced, as the way back
until "daisychain retire <move-id>".

A failure before the switch rolls the move back (exit 1; the tenant stays on
its source); one after leaves it open for resume.

` + ctrlCNote,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, false)
			id := fs.String("id", "", "the move's ID, for resume and retire (default: the tenant and the start time)")
			return func(ctx context.Context, inv *invocation) error {
				if len(inv.args) != 2 {
					return usagef("move takes a tenant and a target instance, got %d arguments", len(inv.args))
				}
				return withMover(ctx, inv, &mf, nil, func(h *fleetHandle) error {
					stop := startProgress(inv, h.mover, nil)
					rep, err := h.mover.Move(ctx, cutover.Request{ID: *id, Tenant: inv.args[0], Target: inv.args[1]})
					stop()
					return printMoveReport(inv, rep, err)
				})
			}
		},
	})
}
