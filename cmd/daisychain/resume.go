package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/daisychain-db/daisychain/cutover"
)

func init() {
	register(&command{
		name:    "resume",
		args:    "<move-id | chain-id>",
		summary: "complete or roll back a move, conversion or chain left open",
		help: `Reads the journal of the ID ("daisychain status" lists the open ones) and
settles it: a move or conversion whose switch went through is completed
(catalog, stream finished); any other is rolled back, so every tenant is
served by exactly one instance. A done move whose retire was cut off is
retired. A chain settles the moves it had started and goes on with its
stages (a chain that converts needs --local-replicas, as "chain" does).
Resuming what is over prints its outcome.

A drain or refill journaled as River jobs (package fleetjobs) is resumed by
its job, not by this command.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, true)
			var cf converterFlags
			cf.register(fs)
			return func(ctx context.Context, inv *invocation) error {
				if len(inv.args) != 1 {
					return usagef("resume takes one move or chain ID, got %d arguments", len(inv.args))
				}
				id := inv.args[0]
				replicas, err := cf.build()
				if err != nil {
					return err
				}
				return withMover(ctx, inv, &mf, replicas.converter(), func(h *fleetHandle) error {
					entries, err := h.journal.Entries(ctx, id)
					if errors.Is(err, cutover.ErrMoveNotFound) {
						return fmt.Errorf("the journal has no move, conversion or chain %q: \"daisychain status\" lists them", id)
					}
					if err != nil {
						return err
					}
					switch entries[0].Kind {
					case cutover.KindChain:
						stop := startProgress(inv, h.mover, h.runner)
						res, err := h.runner.ResumeChain(ctx, id)
						stop()
						err = printChainResult(inv, res, err)
						return errors.Join(err, replicas.holdUntilStopped(ctx, inv.stderr))
					case cutover.KindDrain:
						return fmt.Errorf("%q is a drain or refill run as River jobs: its job resumes it (enqueue it again), not this command", id)
					}
					stop := startProgress(inv, h.mover, nil)
					rep, err := h.mover.Resume(ctx, id)
					stop()
					err = printMoveReport(inv, rep, err)
					return errors.Join(err, replicas.holdUntilStopped(ctx, inv.stderr))
				})
			}
		},
	})
}
