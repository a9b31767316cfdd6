// Package replica declares what every way of copying a tenant database
// (or a whole instance) to another instance provides: a Provider starts a
// Stream described by a Spec, resumable by the Spec's ID, and the Stream
// reports Progress, takes a Barrier position after the source is fenced,
// waits until the target has applied it, syncs sequences, verifies,
// checks the source schema for drift, and finishes or aborts.
//
// Implementations live in subpackages: replica/logical streams one
// database with PostgreSQL's logical replication.
//
// # Converting a whole instance
//
// A Converter builds a replica of a whole instance (every tenant database
// at once) that becomes a primary of its own: replica/physical builds a
// local streaming standby with pg_basebackup; a cloud vendor's replica
// API (a read replica that can be promoted) fits the same interface. A
// Converter for a vendor must:
//
//   - be idempotent by ConvertSpec.ID: Start with an ID whose replica
//     exists returns a Conversion for it, never a second replica (tag the
//     replica with the ID, or derive its name from it); Abort and Promote
//     may be called again after a crash or a partial failure and do what
//     is left;
//   - check before it creates anything (the vendor's quotas, the
//     source's engine version and settings) and fail with ErrPreflight
//     naming what to fix; a failed Start leaves nothing behind;
//   - create the replica through the vendor's API and report, in
//     Progress, PhaseCopy until it follows the source, then
//     PhaseStreaming with LagBytes (or 0 and CatchUpETA from the vendor's
//     lag in time, when bytes are not available) and Err for a replica
//     that failed;
//   - return from Barrier a position that is after every transaction
//     committed on the source before the call (pg_current_wal_lsn()
//     after a write of its own, or a logical message), and from WaitFor
//     only when the replica has replayed that position
//     (pg_last_wal_replay_lsn() >= pos on the replica, or the vendor's
//     equivalent); the cutover relies on it to lose no acknowledged
//     write;
//   - on Promote, ask the vendor to promote and return only when the
//     replica accepts writes; drop any replication slot it made on the
//     source; never touch the source otherwise (it stays intact for a
//     rollback);
//   - expose the replica's Endpoint for routes, and an AdminConnString
//     for the library (never printed);
//   - on Abort, delete the replica and whatever it made on the source.
//
// The errors callers branch on are the Err* sentinels; use errors.Is.
// Connection strings in a Spec carry secrets: Spec's String and LogValue
// never show them, and neither does any error of this package or its
// implementations.
package replica
