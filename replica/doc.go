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
// The errors callers branch on are the Err* sentinels; use errors.Is.
// Connection strings in a Spec carry secrets: Spec's String and LogValue
// never show them, and neither does any error of this package or its
// implementations.
package replica
