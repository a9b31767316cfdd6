// Command daisychain is the operator's tool over the library: it shows
// the journal's moves, plans drains, refills and chains, and runs,
// resumes and retires moves, against the fleet that a control database
// describes (its catalog, routes and journal).
//
//	daisychain [--control CONN] [--json] <command> [flags] [arguments]
//
//	status                      open and recent moves, conversions, drains and chains
//	plan drain <instance>       the moves a drain would make, with estimates
//	plan refill <instance>      the moves a refill would make
//	plan chain <instance>...    a daisy chain's stages
//	move <tenant> <instance>    move one tenant (--dry-run: its steps and estimates)
//	rehearse <tenant> <instance> time a move on a scratch copy, for the estimates
//	drain <instance>            move tenants off an instance under a threshold
//	refill <instance>           move tenants onto an instance from others
//	chain <instance>...         drain, convert and refill each instance in turn
//	resume <id>                 complete or roll back a run left open
//	retire <move-id>            drop a done move's source copy
//	pgbouncer follow            keep a PgBouncer's entries equal to the routes
//
// The control database comes from --control or DAISYCHAIN_CONTROL;
// passwords, for it and for every instance, from PGPASSWORD or the
// password file, never from a flag, and nothing prints them. Human tables
// by default, one JSON document on stdout with --json; progress bars on
// stderr when it is a terminal; Prometheus metrics with --metrics-listen.
// Exit status 0 done, 1 failed, 2 bad usage. "daisychain <command> -h"
// says more.
//
// Each command is a file that registers itself (command.go): another
// command is another file.
package main
