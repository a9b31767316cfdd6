package cutover_test

import (
	"context"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
)

// TestMoveWithoutRoutePause: with NoRoutePause nothing holds new work, so
// the quiesce step does not wait for a quiet spell that a client writing
// without a break never leaves: it ends at the first moment nothing runs,
// long before QuiesceGrace, and the fence ends what comes after.
func TestMoveWithoutRoutePause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	const grace = 10 * time.Second
	mover, err := f.Mover(&cutover.Config{NoRoutePause: true, QuiesceGrace: grace, WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A client that bypasses the Router and writes every few
	// milliseconds until the fence ends its session.
	direct, err := f.Instances["pg-a"].Connect(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	if _, err := direct.Exec(ctx, "INSERT INTO customers (email) VALUES ('warm@example.com')"); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan int)
	go func() {
		n := 0
		for ; ; n++ {
			if _, err := direct.Exec(ctx, "UPDATE customers SET email = email WHERE id = 1"); err != nil {
				stopped <- n
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	rep, err := mover.Move(ctx, cutover.Request{ID: "unpaused", Tenant: "acme", Target: "pg-b"})
	if err != nil {
		t.Fatalf("move: %v\n%s", err, rep)
	}
	if n := <-stopped; n == 0 {
		t.Error("the direct client never wrote")
	}
	for _, s := range rep.Steps {
		if s.Step == cutover.StepQuiesce && s.Duration >= grace/2 {
			t.Errorf("the quiesce step took %s of its %s grace: it waited for a quiet spell nothing would bring\n%s", s.Duration, grace, rep)
		}
	}
	if route, err := f.Routes.Resolve(ctx, "acme"); err != nil || route.Instance != "pg-b" {
		t.Errorf("route after the move: %v, %v", route, err)
	}
}
