package main

import (
	"flag"
	"os"

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
		"they run as children of this command and stop when it exits, so this is for rehearsals on one machine")
}

// build returns the Converter, or nil when none was asked for.
func (c converterFlags) build() (replica.Converter, error) {
	if c.localDir == "" {
		return nil, nil
	}
	if st, err := os.Stat(c.localDir); err != nil || !st.IsDir() {
		return nil, usagef("--local-replicas %q is not a directory: create it, or name one", c.localDir)
	}
	return &physical.Converter{Replica: localpg.Config{BaseDir: c.localDir}}, nil
}
