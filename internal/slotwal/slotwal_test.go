package slotwal_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/internal/slotwal"
	"github.com/daisychain-db/daisychain/replica"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Only wal_status lost is a lost slot, and its error names the slot, the
// setting that bounds it and what to do.
func TestLost(t *testing.T) {
	for _, status := range []string{"reserved", "extended", "unreserved"} {
		if err := slotwal.Lost("dc_x", "stream", &status); err != nil {
			t.Errorf("wal_status %s: %v, want nil", status, err)
		}
	}
	if err := slotwal.Lost("dc_x", "stream", nil); err != nil {
		t.Errorf("no wal_status: %v, want nil", err)
	}
	lost := "lost"
	err := slotwal.Lost("dc_x", "replica", &lost)
	if !errors.Is(err, replica.ErrSlotLost) {
		t.Fatalf("wal_status lost: %v, want ErrSlotLost", err)
	}
	for _, want := range []string{"dc_x", "max_slot_wal_keep_size", "Abort the replica"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not say %q", err, want)
		}
	}
}
