package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/physical"
)

// converterFlags choose how a chain converts its instances. The library
// has one Converter: replica/physical's local one, whose replicas are
// streaming standbys run on this machine as children of this process. A
// vendor's replica API is a replica.Converter a host program wires; this
// command offers the local one only when asked, for rehearsals on one
// machine.
type converterFlags struct {
	localDir string
}

func (c *converterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.localDir, "local-replicas", "", "convert with local streaming standbys whose data directories go under `DIR`; "+
		"they run as children of this command, which keeps them up until it is stopped: for rehearsals on one machine")
}

// build returns the local converter, or nil when none was asked for.
func (c converterFlags) build() (*localReplicas, error) {
	if c.localDir == "" {
		return nil, nil
	}
	if st, err := os.Stat(c.localDir); err != nil || !st.IsDir() {
		return nil, usagef("--local-replicas %q is not a directory: create it, or name one", c.localDir)
	}
	// The replica's roles and passwords are its source's: the Converter
	// sets them, and its authentication, from the source's.
	return &localReplicas{Converter: physical.Converter{Replica: localpg.Config{Name: "converted", BaseDir: c.localDir}}}, nil
}

// localReplicas is replica/physical's Converter, whose conversions'
// replicas (and, once promoted, the converted instances that serve
// tenants) are servers this process runs: they stop with it.
type localReplicas struct {
	physical.Converter
}

// converter is r as the Mover's Converter: nil when r is.
func (r *localReplicas) converter() replica.Converter {
	if r == nil {
		return nil
	}
	return &r.Converter
}

// holdUntilStopped keeps the running replicas (converted instances, or
// ones not yet promoted that a resume would take up) serving until ctx
// ends, and then stops them.
func (r *localReplicas) holdUntilStopped(ctx context.Context, stderr io.Writer) error {
	if r == nil {
		return nil
	}
	var running []*localpg.Instance
	var names []string
	for _, c := range r.Conversions() {
		if inst := c.LocalInstance(); inst != nil && inst.Running() {
			running = append(running, inst)
			names = append(names, c.ID())
		}
	}
	if len(running) == 0 {
		return nil
	}
	fmt.Fprintf(stderr, "the local replicas of %s run as children of this command: it keeps them serving until you stop it (Ctrl-C); "+
		"then they stop, and so do the instances they became\n", strings.Join(names, ", "))
	<-ctx.Done()
	var errs []error
	for _, inst := range running {
		errs = append(errs, inst.Stop())
	}
	return errors.Join(errs...)
}
