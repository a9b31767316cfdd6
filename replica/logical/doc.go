// Package logical streams one tenant database to another instance with
// PostgreSQL's own logical replication: a publication and a replication
// slot in the source database, a subscription in the target database.
// This package drives, watches and cleans them up; it implements
// replica.Provider and replica.Stream.
//
// # What Start does
//
//  1. Preflight (also available alone, changing nothing): connections and
//     privileges (superuser on both sides: a publication FOR ALL TABLES
//     and a subscription need it), wal_level=logical,
//     max_slot_wal_keep_size set on the source (without a bound, a
//     stalled target keeps WAL on the source until its disk is full once
//     this process and its WAL guard are gone;
//     Options.AllowUnboundedSlotWAL accepts that), no transaction that
//     has written open on the source server for longer than
//     Options.LongTransactionLimit (creating a replication slot waits for
//     every such transaction to end, in any database: the stream's slot,
//     which the initial copy creates in the background, so that
//     Progress.Blockers names what it waits for; Options.WaitForLongTransactions starts
//     anyway; the Provider fields of the same names set these three for
//     every stream, as a cutover's user does), free replication
//     slots and WAL senders on the source and logical replication workers
//     on the target (one slot, two WAL senders, one worker), a replica
//     identity on every table, unlogged tables (not
//     replicated: Options.SkipUnlogged goes on without them), large
//     objects, no subscriptions in the source database (another move is
//     filling it), extensions, and roles the schema and the database
//     itself (owner, privileges, settings) need on the target (the
//     stream creates no role),
//     encoding and locale, the target database absent or empty, pg_dump's
//     version, the target server's reach to the source (see
//     Credentials). Every problem is listed, each with what to fix; a
//     non-empty target is never written.
//  2. The publication FOR ALL TABLES is created on the source, with the
//     stream's record as its comment (see below). The target database is
//     created (with the source's encoding, collation, ctype and locale
//     provider, ICU locale included) unless it exists empty, and the
//     stream's state is written as its comment: whether the stream
//     created it, how far it got, the schema fingerprint.
//  3. Schema: pg_dump --schema-only of the source database; pg_restore, in
//     one transaction, of the pre-data section (tables, types, functions).
//  4. The subscription, with create_slot = false (source and target may
//     be the same server), copy_data = false and disabled, on the slot the
//     initial copy creates.
//  5. In the background: the initial copy (see below), and as each table
//     is copied, its indexes, constraints and triggers, restored with
//     pg_restore --jobs (Provider.Jobs, each job's maintenance_work_mem
//     Provider.MaintenanceWorkMem); once every table is copied and the
//     primary keys and replica-identity indexes of all are built (the
//     apply worker finds rows by them), the subscription is enabled: it
//     streams from the slot's consistent point. Then the rest of the
//     schema is restored, and the materialized views populated on the
//     source are refreshed on the target (the schema dump creates them
//     empty); last, the target database gets the source database's owner,
//     privileges (GRANT ... ON DATABASE) and settings (ALTER DATABASE ...
//     SET, ALTER ROLE ... IN DATABASE ... SET; with Options.NoOwner only
//     the former), replacing its own; then the stream streams. A foreign key is built once both its
//     tables are kept by the apply worker (state r), so that they agree. A
//     pg_restore that keeps failing while the target is up stops the
//     stream with its error (Progress reports it); cancelling one ends its
//     workers too. Meanwhile the WAL guard stops the stream with
//     replica.ErrWALLimit when the slot's retained WAL reaches 90% of
//     Options.MaxRetainedWAL: it drops the subscription and the slots,
//     never the target database (Abort drops it), and the stream cannot be
//     resumed. A slot the source invalidated (wal_status lost) stops the
//     stream with replica.ErrSlotLost at once. Once WaitFor has succeeded
//     the cutover is in its window and the guard is off: the cutover
//     finishes or aborts the stream.
//
// Object names are "dc_" + up to 40 characters of the stream ID folded to
// [a-z0-9_] + "_" + 12 hex digits of its SHA-256: valid identifiers and
// slot names, at most 56 bytes, distinct for distinct IDs.
//
// # The initial copy
//
// The stream copies the data itself, as pgcopydb does, rather than
// through the subscription's table-sync workers (one COPY per table,
// the indexes waiting for it). It creates its slot on a connection in
// WAL sender mode with CREATE_REPLICATION_SLOT ... LOGICAL pgoutput
// (SNAPSHOT 'export') and keeps that connection open while the copy
// runs: the exported snapshot shows exactly what committed before the
// slot's consistent point, and the slot streams exactly what commits
// after it, so nothing is missed and nothing applied twice.
// Provider.CopyJobs sessions each open a REPEATABLE READ, READ ONLY
// transaction on the source with that snapshot (SET TRANSACTION
// SNAPSHOT) and a connection to the target (session_replication_role =
// replica, no statement timeout), and copy the tables the publication
// publishes, largest first; a table larger than Provider.CopyRangeSize
// is copied in ranges of its blocks (TID range scans, ctid >= '(a,0)'
// AND ctid < '(b,0)', PostgreSQL 14 and later), which need no key. Each
// range is piped from the source's COPY TO STDOUT into the target's
// COPY FROM STDIN, in binary format when both servers run the same
// major version and every column's type is built in (through domains
// and arrays) or an enum, else as text (aclitem, composites, an
// extension's types). A table copied whole is truncated and copied with
// COPY ... FREEZE in one transaction on the target: its rows arrive
// frozen, so the index builds that read it next, and later vacuums, do
// not write its pages again. Progress counts the tables and bytes copied.
//
// A copy that fails for a reason that may pass (a server restarting)
// starts over, at most 10 times; the exported snapshot dies with the
// session that exported it, so a copy never resumes half-way: it starts
// over from a new slot after dropping the old one, dropping the foreign
// keys built meanwhile and truncating every table it copies; the
// post-data objects are built again. A stream resumed by Start in the
// copy (its process was killed) does the same: a half-copied table is
// never taken for done. The marker counts the tries (copy_attempts).
//
// # Credentials
//
// The stream connects to the source twice over: from this process
// (Spec.Source, for the schema, the slot, the barrier) and from the target
// server (the subscription). Supply the source's password in one of these
// ways:
//
//   - in the connection string (Spec.Source, or Spec.SourceForTarget when
//     the target reaches the source under another address or role);
//   - in PGPASSWORD, or a passfile (PGPASSFILE, else ~/.pgpass), of this
//     process: pgx finds it for this process's connections, and the
//     stream carries what it resolves (the password, and the user, host
//     and port when the string names none) into the subscription's
//     connection string, since the target server's libpq sees the
//     server's environment, not this one's;
//   - no password, where the source's pg_hba.conf trusts (or
//     certificate-authenticates) both this process and the target server.
//
// Preflight checks from the target that it reaches the source with the
// subscription's connection string: it creates the subscription with
// connect = true, create_slot = false, enabled = false and slot_name =
// NONE, which connects to the source and makes nothing there, inside a
// transaction on the target that it rolls back.
//
// # What is the stream's
//
// What the stream drops is what its own records say it made, never what
// merely has the name it would give its objects. It keeps two: the
// record, its publication's comment on the source, written in the
// transaction that creates the publication (the first thing a new stream
// makes), and the marker, the target database's comment. Before it makes
// anything else it notes it in the record: the slot before it creates the
// slot, a staging database before it creates that on the target. The
// target database is created under a staging name derived from the ID,
// gets its marker, and only then the target database's name: creating it
// and making it the stream's are one durable fact, whenever the process
// is killed. A new stream whose slot or publication name is taken by
// something its records do not name is refused by preflight, naming it.
//
// Abort (and Finish) drop the slots and the publication on the source
// even when the target cannot be reached (they give up on the target
// after 15 s): the error then names what is left on the target, whose
// marker still says it is the stream's, and Abort again, once the target
// is back, removes it. The subscription is dropped without connecting to
// the source (DISABLE, slot_name = NONE, and a connection string that
// leads nowhere), so a table-sync worker stuck on the source cannot hold
// the drop up; the stream drops its table-sync slots on the source
// itself.
//
// Start with the ID of an existing stream reads the state from the target
// database's comment and goes on from there: it never makes a second slot
// (the slot's name is fixed by the ID, and it is created only when absent,
// or in the copy, once the one before is dropped: see The initial copy),
// an interrupted schema restore is redone (the first part runs in one
// transaction; the second with --clean --if-exists), and a slot that is
// gone while its subscription exists is replica.ErrSlotLost. If a new
// stream's Start fails, it removes what it created. Provider.Abort removes
// a stream that cannot be resumed.
//
// # The cutover
//
// Barrier writes a logical message to the source database in a transaction
// of its own, flushed at commit, and returns its position. WaitFor returns
// when the target has applied and flushed everything before it: either the
// slot's confirmed_flush_lsn has passed it, or the target's apply worker
// has received the stream beyond it (it applies in order) and the target's
// WAL has been flushed since, by the same worker: WaitFor commits a
// transaction that writes WAL with synchronous_commit = local, whatever
// the target's own setting. The second test makes the wait after a fence
// the replication delay (about 10 ms on a local pair) instead of the
// subscriber's feedback timer (up to a second).
//
// A fence may close the source database: refuse new connections (even
// a superuser's) and end every client session in it, as cutover's
// DatabaseFence does. The stream does not need them after the fence:
// Barrier, WaitFor, Progress and the guard use the source's admin
// database (the one Spec.Source names; "postgres" if that is the tenant
// database), and SyncSequences, Verify, CheckSchema and Finish (which
// drops the publication) fall back to a connection to the tenant
// database that the stream holds from Start on in WAL sender mode
// (replication=database): fences leave WAL senders running. It costs one
// WAL sender, which preflight counts. A fence that ends every session of
// the database, WAL senders included, must spare the held connection and
// the WAL senders of the stream's slots: the stream names their PIDs with
// FencePIDs, an optional capability found by type assertion:
//
//	interface{ FencePIDs(ctx context.Context) ([]uint32, error) }
//
// A fence that refuses connections also refuses the stream's own
// reconnection: after a source restart the subscriber, and the held
// connection, cannot come back while it is up. So a cutover calls the
// stream's Ready right before it fences (an optional capability:
// interface{ Ready(ctx context.Context) error }); it returns once a WAL
// sender streams the slot to the subscription, the target's apply worker
// runs and the held connection is open, and fails with
// replica.ErrNotStreaming after Provider.ReadyTimeout. Inside the window,
// WaitFor fails with replica.ErrNotStreaming once no WAL sender has
// served the slot for Provider.SenderGrace, instead of holding writes
// for the whole budget: a cutover then takes its fences down (its routes
// still paused), calls Ready, fences again sparing the stream's new
// sessions and waits for a new barrier, or rolls back. FencePIDs names
// the PIDs of the stream's sessions on the source, which change when
// they reconnect, so a fence reads it again before each round.
//
// Provider.Finish and Provider.Abort have no such connection: on a fenced
// source they drop the slots and leave the publication (harmless without
// a slot) with a warning, until they run again after the fence.
//
// Every connection the stream opens sets TimeZone, DateStyle,
// IntervalStyle, extra_float_digits, bytea_output and lc_monetary at
// startup, so values print alike on both servers whatever their defaults
// (Verify's checksums hash rows as text).
//
// The subscription's connection string holds the source's password. It is
// never the text of a statement: the target receives it as a bound
// parameter of a temporary function that runs CREATE SUBSCRIPTION, so
// pg_stat_activity (readable by pg_monitor members) and the target's log
// show only the call, and an error raised inside it is raised again
// without the statement. On the target it is then stored in
// pg_subscription.subconninfo, which only superusers can read.
//
// Options.SetReplicaIdentityFull is the explicit way to stream tables
// without a primary key; it changes the source (REPLICA IDENTITY FULL).
// Large objects are not replicated; Options.AllowLargeObjects goes on
// without them. Sequences are not replicated while streaming:
// SyncSequences copies every sequence's value and is_called after the
// fence.
//
// # The reverse
//
// After a cutover's switch, the stream's reverse carries the target
// database's writes back to the source database, so that the cutover can
// be reverted (see reverse.go for how it is made without an origin
// filter): PrepareReverse on the stream; RecordReverseStart,
// StartReverse, AbortReverse and ReverseRetainedWAL on the Provider. It
// copies nothing, and never drops a database.
//
// # What Verify costs
//
// Verify reads every table once on the source and once on the target, at
// the same time, four tables at a time. Measured by BenchmarkCopy on a
// 2-CPU machine with source and target on it, data in the page cache,
// per GB of table data (heap and TOAST):
//
//	VerifyOff        nothing
//	VerifyCounts     about 1–2 s/GB  (count(*): a sequential scan per table)
//	VerifyChecksums  about 8–13 s/GB (every row formatted as text and hashed,
//	                 the hashes summed: CPU-bound, about 8x counts)
//
// Under a fence that closes the source database, the source side is read
// through one connection, one table at a time, which can double that.
//
// Both scale with the bytes read and the CPUs free on each server; data
// not in the cache adds the disk read (a sequential scan at the disk's
// speed). Checksums are order-independent (a sum over the rows) and name
// each table that differs. Materialized views are not compared: each
// side's holds its query's result as of its own last refresh.
//
// # How fast
//
// BenchmarkInitialCopy times, for a tenant of one large table (pgbench)
// and one of 200 tables of the same size, how long each tool takes to
// make a target ready for the window, from the same source into the
// same target instance, the tools alternating: a stream until it
// streams with every index and constraint built and has applied a
// barrier; pgcopydb clone --table-jobs N --index-jobs N; pg_dump -Fd -j N
// -Z0 followed by pg_restore -j N (N the CPUs):
//
//	DAISYCHAIN_BENCH_COPY_MB=1000 DAISYCHAIN_BENCH_ROUNDS=5 go test ./replica/logical -run '^$' -bench BenchmarkInitialCopy -benchtime 1x -timeout 3h
//
// On a 2-CPU machine shared with other test runs (load average 3 to 11;
// source and target on it, fsync off; pgcopydb 0.10), the medians of two
// runs of 3 to 5 rounds each:
//
//	tenant                            stream       pgcopydb     pg_dump+pg_restore  stream/pgcopydb
//	one table (pgbench, 949 MB)       5.6–7.0 s    8.8–9.2 s    10.0–10.1 s         0.61–0.79
//	200 tables (1106 MB)              8.5–15.5 s   17.5–28.5 s   9.4–19.4 s         0.48–0.54
//
// The stream copies a table larger than CopyRangeSize in ranges, by
// CopyJobs sessions; a table copied whole is copied FREEZE, which, on 2
// CPUs, made a 770 MB table ready sooner than ranges did (see
// Provider.CopyRangeSize). A stream has about half a second of fixed
// cost (preflight, schema dump and first restore).
//
// BenchmarkCopy measures a stream while the source takes writes, with
// what Verify costs:
//
//	DAISYCHAIN_BENCH_MB=300 go test ./replica/logical -run '^$' -bench BenchmarkCopy -benchtime 1x -timeout 1h
package logical
