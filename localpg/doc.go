// Package localpg starts throwaway PostgreSQL instances from the server
// binaries installed on the machine: the embedded default for daisychain's
// examples and tests, and for its users' own tests.
//
// Each instance lives in a temporary directory, listens on a free port on
// 127.0.0.1 (and on a Unix socket inside its directory), and is configured
// for logical replication: wal_level=logical, with replication slots, WAL
// senders and logical replication workers sized for dozens of concurrent
// tenant moves.
//
// initdb runs once per process and per distinct configuration; every
// further instance is a copy of that template, so starting one costs a file
// copy and a server start. On a 2-core machine, measured with
//
//	go test ./localpg -run '^$' -bench BenchmarkStart
//
// the first instance of a process takes about 1 s (initdb) and every
// further one about 0.2 s until it accepts connections.
//
// StartFrom starts an instance from a data directory that a function
// fills instead (pg_basebackup for a standby), with localpg's settings,
// port and pg_hba.conf written over it.
//
// When the process runs as root, PostgreSQL refuses to start, so the
// server runs as an unprivileged system user (Config.OSUser, default
// "postgres") and the instance's directories are owned by it.
//
// The server is a direct child of the process and receives SIGQUIT
// (immediate shutdown) if the process dies, so no server outlives a test
// binary. Package localpgtest wraps Start for tests: it stops the instance
// in t.Cleanup and prints the server log when the test failed.
//
// Connection strings returned by ConnString contain the superuser's
// password; Instance.String and Redact never do.
package localpg
