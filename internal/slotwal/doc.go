// Package slotwal is what both replica packages say and read about the
// WAL a replication slot keeps on the source: the error of a slot the
// source invalidated, and the source's bound on a slot's WAL
// (max_slot_wal_keep_size).
package slotwal
