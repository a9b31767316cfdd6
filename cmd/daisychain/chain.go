package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/daisychain-db/daisychain/drain"
)

func init() {
	register(&command{
		name:    "chain",
		args:    "<instance>... --spares <instance>[,...] --threshold <limits> --local-replicas <dir>",
		summary: "the daisy chain: drain, convert and refill each instance in turn",
		help: `For each instance in order: drain it under --threshold onto the spares and
the instances converted before it, convert it (every remaining tenant at
once, in one window, onto a replica promoted as <instance>.1), and refill the
converted instance from the spares. Planned whole first: a chain that cannot
be planned moves nothing. Each stage is journaled under the chain's ID:
"daisychain resume <chain-id>" goes on after a crash.

A conversion needs a Converter. The library's own, replica/physical, runs
each replica as a streaming standby on this machine, a child of this
command: --local-replicas enables it, for rehearsals on one machine. After
the chain the command keeps the converted instances serving until it is
stopped (Ctrl-C), and they stop with it. A vendor's replica API is a Converter that a
host program wires (drain.Runner.Chain); "plan chain" and "status" work for
it all the same.

` + ctrlCNote,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var mf moverFlags
			mf.register(fs, true)
			var cf converterFlags
			cf.register(fs)
			var chf chainFlags
			chf.register(fs)
			id := fs.String("id", "", "the chain's ID, for resume (default: chain- and the start time)")
			return func(ctx context.Context, inv *invocation) error {
				req, err := chf.parse(inv.args)
				if err != nil {
					return err
				}
				req.ID = *id
				if cf.localDir == "" {
					return usagef("a chain converts instances, and this command's only converter is the local one: give --local-replicas DIR (see -h)")
				}
				replicas, err := cf.build()
				if err != nil {
					return err
				}
				return withMover(ctx, inv, &mf, replicas.converter(), func(h *fleetHandle) error {
					stop := startProgress(inv, h.mover, h.runner)
					res, err := h.runner.Chain(ctx, req)
					stop()
					err = printChainResult(inv, res, err)
					return errors.Join(err, replicas.holdUntilStopped(ctx, inv.stderr))
				})
			}
		},
	})
}

// chainStage is one stage of a chain's result, for print and JSON.
type chainStage struct {
	Instance  string     `json:"instance"`
	Converted string     `json:"converted"`
	Drained   []moveLine `json:"drained"`
	Refilled  []moveLine `json:"refilled"`
	// Conversion is the conversion's move ID and window.
	Conversion string  `json:"conversion,omitempty"`
	WindowMS   float64 `json:"conversion_window_ms"`
}

func printChainResult(inv *invocation, res *drain.ChainResult, err error) error {
	var stages []chainStage
	if res != nil {
		for _, s := range res.Stages {
			st := chainStage{Instance: s.Instance, Converted: s.Converted,
				Drained: newRunResult("drain", s.Instance, s.Drain).Moved, Refilled: newRunResult("refill", s.Converted, s.Refill).Moved}
			if s.Convert != nil {
				st.Conversion, st.WindowMS = s.Convert.Move, ms(s.Convert.Window)
			}
			stages = append(stages, st)
		}
	}
	if inv.g.json {
		doc := map[string]any{"stages": stages}
		if res != nil {
			doc["chain"] = res.ID
		}
		return writeDoc(inv, doc, err)
	}
	if res != nil {
		fmt.Fprint(inv.stdout, res.String())
		for _, st := range stages {
			printMoveLines(inv.stdout, append(st.Drained, st.Refilled...))
		}
	}
	return err
}
