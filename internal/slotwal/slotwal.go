package slotwal

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// Lost returns replica.ErrSlotLost when walStatus (the slot's
// pg_replication_slots.wal_status) says the source invalidated slot, and
// nil otherwise. consumer names what the slot kept WAL for ("stream",
// "replica").
func Lost(slot, consumer string, walStatus *string) error {
	if walStatus == nil || *walStatus != "lost" {
		return nil
	}
	return fmt.Errorf("%w: the source invalidated slot %s (wal_status lost): it kept more WAL for the %s than the source's "+
		"max_slot_wal_keep_size allows, and the %s misses WAL it had not received: Abort the %s and start it again",
		replica.ErrSlotLost, slot, consumer, consumer, consumer)
}

// MaxKeepMB reads the source's max_slot_wal_keep_size in megabytes, -1
// when it is unlimited.
func MaxKeepMB(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (int64, error) {
	var mb int64
	err := q.QueryRow(ctx, `SELECT setting::int8 FROM pg_settings WHERE name = 'max_slot_wal_keep_size'`).Scan(&mb)
	return mb, err
}
