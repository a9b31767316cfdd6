package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/daisychain-db/daisychain/cutover"
)

func init() {
	register(&command{
		name:    "rehearse",
		args:    "<tenant> <target-instance>",
		summary: "time a tenant's move without moving it, for the estimates",
		help: `Runs the tenant's move against a scratch database on the target instance:
copy and catch-up (progress on a terminal), then a window that fences nothing
and switches nothing. Every step is timed; then the scratch database and the
stream are dropped, and what was measured is recorded in the journal, where
the estimates of "plan" and "move --dry-run" read it: the newest runs of the
same instance pair once there are 2, else the fleet's newest. The
application keeps its route throughout; the source carries a move's load
(the copy, and the slot's WAL) until the end. Prints the report and the
measurement; --json gives both in one document.

A rehearsal that fails drops what it made (exit 1); the tenant itself was
never touched. Ctrl-C (or SIGTERM) drops it too before the command exits; if
the command is killed instead, "daisychain resume <id>" drops it.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, false)
			id := fs.String("id", "", "the rehearsal's ID, for resume (default: the tenant, \"rehearsal\" and the start time)")
			return func(ctx context.Context, inv *invocation) error {
				if len(inv.args) != 2 {
					return usagef("rehearse takes a tenant and a target instance, got %d arguments", len(inv.args))
				}
				return withMover(ctx, inv, &mf, nil, func(h *fleetHandle) error {
					stop := startProgress(inv, h.mover, nil)
					rep, err := h.mover.Rehearse(ctx, cutover.RehearseRequest{ID: *id, Tenant: inv.args[0], Target: inv.args[1]})
					stop()
					err = printMoveReport(inv, rep, err)
					if !inv.g.json && rep != nil && rep.Measurement != nil {
						fmt.Fprintf(inv.stdout, "measured: %s\n", rep.Measurement)
					}
					return err
				})
			}
		},
	})
}
