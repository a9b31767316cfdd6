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
// initdb runs once per binary and system user, into a template kept in
// the temporary directory for later processes too; every instance is a
// copy of that template, so starting one costs a file copy and a server
// start (about 10 ms). Measured with
//
//	go test ./localpg -run '^$' -bench BenchmarkStart -benchtime 10x
//
// on the 2-core machine this was written on: 0.15 s per instance when its
// disk created files quickly, and 0.5 to 1 s later in the same session,
// when creating each of the template's ~1,000 files took about a
// millisecond. The copy is what to speed up next (a smaller template).
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
