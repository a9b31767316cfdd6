package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// A command is one subcommand, in a file of its own that registers it
// in init: adding a subcommand adds a file.
type command struct {
	// name is how it is called: "status", or "plan drain".
	name string
	// args is the synopsis of its arguments, after its flags.
	args string
	// summary is one line for the list of commands; help says more.
	summary, help string
	// setup registers the command's flags on fs and returns what runs it.
	setup func(fs *flag.FlagSet) func(ctx context.Context, inv *invocation) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// terminal is where output goes.
type terminal struct {
	stdout, stderr io.Writer
	// stderrTTY says stderr is a terminal: progress bars go there only then.
	stderrTTY bool
}

// invocation is one run of a command.
type invocation struct {
	*terminal
	g *globals
	// args are the positional arguments.
	args []string
	// getenv reads the environment (a test's, or the process's).
	getenv func(string) string
}

// usageError is an error in how the command was called: it exits with
// exitUsage after the command's usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, term *terminal, getenv func(string) string) int {
	g := &globals{progress: true}
	top := flag.NewFlagSet("daisychain", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printTopUsage(term.stdout, top)
			return exitOK
		}
		fmt.Fprintf(term.stderr, "daisychain: %v\n\n", err)
		printTopUsage(term.stderr, top)
		return exitUsage
	}
	rest := top.Args()
	if len(rest) > 1 && rest[0] == "help" {
		// "help move" is "move -h".
		rest = append(rest[1:], "-h")
	}
	if len(rest) == 0 || rest[0] == "help" {
		w, code := term.stderr, exitUsage
		if len(rest) == 1 {
			w, code = term.stdout, exitOK
		}
		printTopUsage(w, top)
		return code
	}
	c, rest := lookup(rest)
	if c == nil {
		fmt.Fprintf(term.stderr, "daisychain: %s\n\n", unknown(rest))
		printTopUsage(term.stderr, top)
		return exitUsage
	}

	fs := flag.NewFlagSet("daisychain "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	runCmd := c.setup(fs)
	positional, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(term.stdout, c, fs)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(term.stderr, "daisychain %s: %v\n(\"daisychain %s -h\" shows its usage)\n", c.name, err, c.name)
		return exitUsage
	}
	g.resolve(getenv)
	err = runCmd(ctx, &invocation{terminal: term, g: g, args: positional, getenv: getenv})
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(term.stderr, "daisychain %s: %v\n(\"daisychain %s -h\" shows its usage)\n", c.name, err, c.name)
		return exitUsage
	default:
		// Also with --json, whose document on stdout may not have been
		// written (a control database out of reach).
		fmt.Fprintf(term.stderr, "daisychain %s: %v\n", c.name, err)
		return exitFailure
	}
}

// lookup finds the command args name, by one word or two ("plan
// drain"), and returns the arguments after its name.
func lookup(args []string) (*command, []string) {
	if len(args) > 1 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c, args[2:]
		}
	}
	if c, ok := commands[args[0]]; ok {
		return c, args[1:]
	}
	return nil, args
}

// unknown says which command lookup did not find: one word, or two
// after a word that begins two-word names, with the words that may
// follow it ("plan nosuch": plan takes chain, drain, refill).
func unknown(args []string) string {
	var next []string
	for name := range commands {
		if word, ok := strings.CutPrefix(name, args[0]+" "); ok {
			next = append(next, word)
		}
	}
	if len(next) == 0 {
		return fmt.Sprintf("unknown command %q", args[0])
	}
	sort.Strings(next)
	given := args[0]
	if len(args) > 1 {
		given += " " + args[1]
	}
	return fmt.Sprintf("unknown command %q: %s takes %s", given, args[0], strings.Join(next, ", "))
}

// parseInterspersed parses flags wherever they are among the arguments
// ("move t1 pg-2 --json" as well as "move --json t1 pg-2") and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func printTopUsage(w io.Writer, top *flag.FlagSet) {
	fmt.Fprint(w, `usage: daisychain [flags] <command> [command flags] [arguments]

daisychain runs and shows tenant moves, drains, refills and chains of the
fleet that a control database describes (its catalog, routes and journal).

commands:
`)
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-14s %s\n", name, commands[name].summary)
	}
	fmt.Fprint(w, `
Run "daisychain <command> -h" for a command's flags and arguments.

flags (before or after the command):
`)
	top.SetOutput(w)
	top.PrintDefaults()
	fmt.Fprint(w, "\n"+passwordNote)
}

func printUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: daisychain %s [flags] %s\n\n%s\n\n%s\n\nflags:\n", c.name, c.args, c.summary, strings.TrimSpace(c.help))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, "\n"+passwordNote+exitNote)
}

const passwordNote = `Passwords: put none in a connection string. They come from PGPASSWORD or
the password file (PGPASSFILE, else ~/.pgpass), for the control database and
for every instance (the catalog keeps instances' connection strings without
passwords). No connection string or password is ever printed.
`

const exitNote = `Exit status: 0 done, 1 failed, 2 bad usage.
`
