package logical_test

import (
	"context"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
)

// reverseMaker is the stream's capability a cutover uses to make the
// reverse.
type reverseMaker interface {
	PrepareReverse(ctx context.Context) error
	ReverseStart(ctx context.Context) (replica.Position, error)
}

// TestReverse: the reverse made as a cutover makes it (publication and
// slot before the window, its start recorded after the target caught up
// and the application wrote there, subscription after the forward stream
// finished) carries every write made on the target since the forward
// stream's last change back to the source, the forward stream's changes
// (one of them made after the slot) not once more; sequences
// go back with SyncSequences; Abort leaves both databases and nothing
// else.
func TestReverse(t *testing.T) {
	t.Parallel()
	inst := localpgtest.Start(t, &localpg.Config{Name: "one"})
	createTenant(t, inst, "shop", 500)
	ctx := testCtx(t, 2*time.Minute)
	sp := spec("reverse", inst, "shop", inst, "shop copy")
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	rm := st.(reverseMaker)
	if err := rm.PrepareReverse(ctx); err != nil {
		t.Fatal(err)
	}
	execSQL(t, inst, "shop", `INSERT INTO orders (kunde, amount) VALUES (1, 1)`) // forward only
	catchUp(t, st, time.Minute)
	if err := st.SyncSequences(ctx); err != nil {
		t.Fatal(err)
	}
	from, err := rm.ReverseStart(ctx) // the window
	if err != nil {
		t.Fatal(err)
	}
	// The application on the target, before the reverse's start is
	// recorded, as after a cutover's switch.
	execSQL(t, inst, "shop copy", `INSERT INTO orders (kunde, amount) VALUES (1, 2)`)
	if _, err := provider.RecordReverseStart(ctx, sp, from); err != nil {
		t.Fatal(err)
	}
	if err := st.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := provider.StartReverse(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	_ = first.Close() // the reverse goes on; a second start resumes it

	rev, err := provider.StartReverse(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rev.Close() })
	execSQL(t, inst, "shop copy", `INSERT INTO orders (kunde, amount) VALUES (1, 3)`, `SELECT setval('standalone_seq', 4242)`)
	catchUp(t, rev, time.Minute)
	if err := rev.SyncSequences(ctx); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, inst, "shop", `SELECT count(*) FROM orders`); n != 503 {
		t.Errorf("source has %d orders, want 503 (500, 1 of its own, 2 carried back)", n)
	}
	if err := rev.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Errorf("source and target differ: %v", err)
	}
	if n := queryInt(t, inst, "shop", `SELECT last_value FROM standalone_seq`); n != 4242 {
		t.Errorf("standalone_seq on the source is %d, want 4242", n)
	}
	if err := rev.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if !databaseExists(t, inst, "shop") || !databaseExists(t, inst, "shop copy") {
		t.Error("the reverse's Abort dropped a database")
	}
	assertNoReplicationObjects(t, inst, "shop", "shop copy")
	if err := provider.AbortReverse(ctx, sp); err != nil {
		t.Errorf("AbortReverse of a reverse that is gone: %v", err)
	}
}
