package main

import (
	"flag"
	"strings"
)

// ControlEnv names the environment variable that gives the control
// database when --control does not.
const ControlEnv = "DAISYCHAIN_CONTROL"

// globals are the flags every command takes, before or after its name.
type globals struct {
	control       secret
	json          bool
	progress      bool
	metricsListen string
	verbose       bool
}

// register adds the global flags to fs, with what was parsed so far as
// their values.
func (g *globals) register(fs *flag.FlagSet) {
	fs.Var(&g.control, "control", "the control database's connection string `CONN` (default $"+ControlEnv+")")
	fs.BoolVar(&g.json, "json", g.json, "print one JSON document on stdout instead of tables")
	fs.BoolVar(&g.progress, "progress", g.progress, "progress bars on stderr when it is a terminal and --json is not set")
	fs.StringVar(&g.metricsListen, "metrics-listen", g.metricsListen, "serve Prometheus metrics at http://`ADDR`/metrics while the command runs (as 127.0.0.1:9464)")
	fs.BoolVar(&g.verbose, "verbose", g.verbose, "log the library's steps on stderr")
}

// resolve fills what the flags left to the environment.
func (g *globals) resolve(getenv func(string) string) {
	if g.control.value == "" {
		g.control.value = strings.TrimSpace(getenv(ControlEnv))
	}
}

// secret is a flag value that is never printed: not as a default in
// the help, not in an error.
type secret struct{ value string }

func (s *secret) String() string     { return "" }
func (s *secret) Set(v string) error { s.value = v; return nil }
