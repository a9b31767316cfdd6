package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

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

--dry-run changes nothing: it runs the preflight and prints the steps the
move would run and its estimates (total, copy, window and verification, with
ranges) from the rate model of the instance pair, saying which measured runs
they rest on ("daisychain rehearse" measures some). Exit 1 when the
preflight finds a problem the move would be refused for.

` + ctrlCNote,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, false)
			id := fs.String("id", "", "the move's ID, for resume and retire (default: the tenant and the start time)")
			dryRun := fs.Bool("dry-run", false, "change nothing: print the preflight's findings, the steps and the estimates")
			return func(ctx context.Context, inv *invocation) error {
				if len(inv.args) != 2 {
					return usagef("move takes a tenant and a target instance, got %d arguments", len(inv.args))
				}
				req := cutover.Request{ID: *id, Tenant: inv.args[0], Target: inv.args[1]}
				if *dryRun {
					return withMover(ctx, inv, &mf, nil, func(h *fleetHandle) error {
						rep, err := h.mover.DryRun(ctx, req)
						return printDryRun(inv, rep, err)
					})
				}
				return withMover(ctx, inv, &mf, nil, func(h *fleetHandle) error {
					stop := startProgress(inv, h.mover, nil)
					rep, err := h.mover.Move(ctx, req)
					stop()
					return printMoveReport(inv, rep, err)
				})
			}
		},
	})
}

// printDryRun prints a move's dry run and returns err, or an error when
// the preflight found problems the move would be refused for.
func printDryRun(inv *invocation, rep *cutover.DryRunReport, err error) error {
	if err == nil && len(rep.Problems) > 0 {
		err = fmt.Errorf("the move would be refused: %d problem(s): %s", len(rep.Problems), strings.Join(rep.Problems, "; "))
	}
	if inv.g.json {
		return writeDoc(inv, map[string]any{"dry_run": rep}, err)
	}
	if rep == nil {
		return err
	}
	fmt.Fprint(inv.stdout, rep.String())
	if rep.Estimate != nil {
		// Each step's estimate, and how many measured runs it rests on.
		t := newTable(inv.stdout)
		fmt.Fprintln(t, "  STEP\tESTIMATE\tRANGE\tSAMPLES")
		for _, s := range rep.Estimate.Steps {
			samples := fmt.Sprint(s.Samples)
			if s.Samples == 0 {
				samples = "default"
			}
			fmt.Fprintf(t, "  %s\t%s\t%s to %s\t%s\n", s.Step, s.Estimate.Round(100*time.Microsecond),
				s.Low.Round(100*time.Microsecond), s.High.Round(100*time.Microsecond), samples)
		}
		t.Flush()
	}
	return err
}
