package main

import (
	"context"
	"flag"

	"github.com/daisychain-db/daisychain/drain"
)

// The arguments of drains, refills and chains, shared by their dry runs
// ("plan ...") and their runs, so that a plan is what the run would do.

// drainFlags are a drain's.
type drainFlags struct {
	threshold, exclude, onto string
	maxMoves                 int
}

func (d *drainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.threshold, "threshold", "", "drain until the instance holds at most this: "+limitsSyntax)
	fs.StringVar(&d.exclude, "exclude", "", "comma-separated instances that must receive no tenant")
	fs.StringVar(&d.onto, "onto", "", "comma-separated instances that alone may receive tenants (default: any registered)")
	fs.IntVar(&d.maxMoves, "max-moves", 0, "cap on the moves (0: none)")
}

// parse checks the flags and args: the instance to drain, the threshold
// and the options.
func (d *drainFlags) parse(args []string) (string, drain.Threshold, *drain.DrainOpts, error) {
	if len(args) != 1 {
		return "", drain.Threshold{}, nil, usagef("takes one instance to drain, got %d arguments", len(args))
	}
	th, err := parseLimits("threshold", d.threshold)
	if err != nil {
		return "", drain.Threshold{}, nil, err
	}
	if d.maxMoves < 0 {
		return "", drain.Threshold{}, nil, usagef("--max-moves %d: give 0 (no cap) or more", d.maxMoves)
	}
	return args[0], th, &drain.DrainOpts{Exclude: splitList(d.exclude), Onto: splitList(d.onto), MaxMoves: d.maxMoves}, nil
}

// refillFlags are a refill's.
type refillFlags struct {
	from, level string
	maxMoves    int
}

func (r *refillFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.from, "from", "", "comma-separated instances to take tenants from (required)")
	fs.StringVar(&r.level, "level", "", "fill up to this instead of the instance's limits: "+limitsSyntax)
	fs.IntVar(&r.maxMoves, "max-moves", 0, "cap on the moves (0: none)")
}

// parse checks the flags and args: the instance to refill, the sources,
// the level and the options.
func (r *refillFlags) parse(args []string) (string, []string, drain.Threshold, *drain.RefillOpts, error) {
	fail := func(err error) (string, []string, drain.Threshold, *drain.RefillOpts, error) {
		return "", nil, drain.Threshold{}, nil, err
	}
	if len(args) != 1 {
		return fail(usagef("takes one instance to refill, got %d arguments", len(args)))
	}
	sources := splitList(r.from)
	if len(sources) == 0 {
		return fail(usagef("--from is missing: name the instances to take tenants from"))
	}
	var lv drain.Threshold
	if r.level != "" {
		var err error
		if lv, err = parseLimits("level", r.level); err != nil {
			return fail(err)
		}
	}
	if r.maxMoves < 0 {
		return fail(usagef("--max-moves %d: give 0 (no cap) or more", r.maxMoves))
	}
	return args[0], sources, lv, &drain.RefillOpts{MaxMoves: r.maxMoves}, nil
}

// chainFlags are a chain's.
type chainFlags struct {
	spares, threshold string
}

func (c *chainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.spares, "spares", "", "comma-separated spare instances (required)")
	fs.StringVar(&c.threshold, "threshold", "", "drain each instance under this before converting it: "+limitsSyntax)
}

// parse checks the flags and args, the chain's instances in order.
func (c *chainFlags) parse(args []string) (drain.ChainRequest, error) {
	if len(args) == 0 {
		return drain.ChainRequest{}, usagef("name the instances of the chain, in order")
	}
	req := drain.ChainRequest{Instances: args, Spares: splitList(c.spares)}
	if len(req.Spares) == 0 {
		return drain.ChainRequest{}, usagef("--spares is missing: name the spare instances that hold the tenants of each stage")
	}
	var err error
	if req.Threshold, err = parseLimits("threshold", c.threshold); err != nil {
		return drain.ChainRequest{}, err
	}
	return req, nil
}

// drainSetup is the setup of a command on a drain's arguments (drain,
// plan drain): run gets them, parsed, and the fleet.
func drainSetup(run func(ctx context.Context, inv *invocation, h *fleetHandle, inst string, th drain.Threshold, opts *drain.DrainOpts) error) func(*flag.FlagSet) func(context.Context, *invocation) error {
	return func(fs *flag.FlagSet) func(context.Context, *invocation) error {
		var mf moverFlags
		mf.register(fs, true)
		var df drainFlags
		df.register(fs)
		return func(ctx context.Context, inv *invocation) error {
			inst, th, opts, err := df.parse(inv.args)
			if err != nil {
				return err
			}
			return withMover(ctx, inv, &mf, nil, func(h *fleetHandle) error { return run(ctx, inv, h, inst, th, opts) })
		}
	}
}

// refillSetup is the setup of a command on a refill's arguments (refill,
// plan refill): run gets them, parsed, and the fleet.
func refillSetup(run func(ctx context.Context, inv *invocation, h *fleetHandle, inst string, sources []string, lv drain.Threshold, opts *drain.RefillOpts) error) func(*flag.FlagSet) func(context.Context, *invocation) error {
	return func(fs *flag.FlagSet) func(context.Context, *invocation) error {
		var mf moverFlags
		mf.register(fs, true)
		var rf refillFlags
		rf.register(fs)
		return func(ctx context.Context, inv *invocation) error {
			inst, sources, lv, opts, err := rf.parse(inv.args)
			if err != nil {
				return err
			}
			return withMover(ctx, inv, &mf, nil, func(h *fleetHandle) error { return run(ctx, inv, h, inst, sources, lv, opts) })
		}
	}
}
