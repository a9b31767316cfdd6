// Package physical converts a whole PostgreSQL instance into a new one on
// this machine: a streaming standby made by pg_basebackup, run by
// localpg, promoted on cutover. It implements replica.Converter; a cloud
// vendor's replica API fits the same interface (see package replica).
//
// # What Start does
//
//  1. Preflight, changing nothing: the source connection, a role with
//     REPLICATION, wal_level at least replica, the source a primary, the
//     same major version as the local server binaries, two free WAL
//     senders and a free replication slot, no tablespaces (they would be
//     shared with the source on the same machine), a replication
//     connection that pg_hba.conf allows, and max_slot_wal_keep_size set
//     on the source (a replica that stops, or a slot a dead process left,
//     would otherwise keep WAL until the source's disk is full;
//     Converter.AllowUnboundedSlotWAL accepts that). Every problem is
//     listed in an error wrapping replica.ErrPreflight.
//  2. A physical replication slot on the source (immediately reserving
//     WAL), named "dcp_" + up to 40 characters of the ID folded to
//     [a-z0-9_] + "_" + 12 hex digits of its SHA-256.
//  3. In the background: pg_basebackup -X stream -R -S <slot>, run as the
//     server's system user (localpg.Instance.Command), with a fast
//     checkpoint (Converter.SpreadCheckpoint) and the password in its
//     environment, fills a new localpg instance's data directory
//     (localpg.StartFrom), which then starts as a hot standby streaming
//     from the slot. The standby's settings that must be at least the
//     primary's are raised to the source's.
//
// Progress reports the bytes copied (pg_stat_progress_basebackup on the
// source), then the replay lag in bytes and the WAL the slot retains.
// When the copy fails, the slot is dropped at once and Progress.Err says
// why; Abort removes the rest. A slot the source invalidated (it kept
// more WAL than max_slot_wal_keep_size allows: wal_status lost) fails
// Progress (Err) and WaitFor with replica.ErrSlotLost: the replica misses
// WAL, and only Abort is left.
//
// # The cutover
//
// Wait until LagBytes is small, fence every tenant database of the
// source (cutover.DatabaseFence: it leaves WAL senders running), then
// Barrier writes a logical message on the source's admin database in a
// transaction of its own and returns its end; WaitFor returns when the
// replica's pg_last_wal_replay_lsn() has reached it: every transaction
// committed before the fence is then on the replica, durably (a standby
// replays only WAL it has flushed). Promote runs pg_promote(wait => true),
// removes primary_conninfo (it holds the source's password) and
// primary_slot_name from the new primary's postgresql.auto.conf, and
// drops the slot on the source. Promote refuses (replica.ErrNotReady)
// until a WaitFor on the same handle succeeded. The source is never
// changed otherwise: it stays as it was, fenced by the caller, for a
// rollback.
//
// # Identity and crashes
//
// Start with the ID of a conversion of the same Converter that was not
// aborted returns it. The replica is a child process of this one
// (localpg): if the process dies, the replica dies with it, and its slot
// stays on the source, inactive, keeping WAL. Start with the same ID in
// a new process reuses that slot for a new base backup; a slot of the ID
// that is active (a replica of another process streams from it) fails
// the preflight. Abort and Promote may be called again after a failure
// and do what is left.
//
// The replica's roles are the source's: AdminConnString connects with
// Source's role and password at the replica's address.
// Converter.Replica.Password is ignored for that reason.
package physical
