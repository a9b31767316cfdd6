package cutover_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// TestWindowLetsTheStreamReconnect: the source restarts inside the
// window, after the fence went up. The fence (ALLOW_CONNECTIONS false)
// refuses the subscription's reconnection, so the target never reaches the
// barrier; the window takes the fences down with the route still paused,
// lets the stream reconnect, fences again and takes a new barrier, and
// the move completes with every acknowledged write on the target.
func TestWindowLetsTheStreamReconnect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	var restarted atomic.Bool
	mover, err := f.Mover(&cutover.Config{
		Provider:     &logical.Provider{SenderGrace: 2 * time.Second},
		WindowBudget: 90 * time.Second,
		BeforeStep: func(ctx context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepBarrier && restarted.CompareAndSwap(false, true) {
				return f.Instances["pg-a"].Restart(ctx)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w := cutovertest.StartWorkload(f.Router, "acme", 2)
	waitForAcks(t, w, 20)
	rep, err := mover.Move(ctx, cutover.Request{ID: "restarted", Tenant: "acme", Target: "pg-b"})
	if err != nil {
		t.Fatalf("move: %v\n%s", err, rep)
	}
	waitForAcks(t, w, 20)
	stats := w.Stop()
	t.Logf("%s\napplication: %d acknowledged, %d errors (the restart ends the pool's connections: %v)", rep, stats.Acknowledged, stats.Errors, stats.FirstError)
	if !restarted.Load() {
		t.Fatal("the source was not restarted")
	}
	if rep.StreamReconnects != 1 {
		t.Errorf("the window let the stream reconnect %d times, want 1", rep.StreamReconnects)
	}
	target, err := f.Instances["pg-b"].Connect(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close(ctx)
	if missing, err := w.Missing(ctx, target); err != nil || missing != 0 {
		t.Errorf("%d of %d acknowledged writes missing on the target (%v)", missing, stats.Acknowledged, err)
	}
	assertReverseStreams(t, f, "pg-a", "pg-b", 1) // until Retire
}
