package cutover_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// errWouldRun stops a request that the locks should have refused at its
// first step, before it changes anything.
var errWouldRun = errors.New("not refused: the request went on to its preflight")

// blockAt returns a BeforeStep hook that, at step s of the first
// operation to reach it, signals reached and waits for release (then
// fails the step with fail, if not nil).
func blockAt(s cutover.Step, reached, release chan struct{}, fail error) func(context.Context, string, cutover.Step) error {
	return func(_ context.Context, _ string, step cutover.Step) error {
		if step != s {
			return nil
		}
		close(reached)
		<-release
		return fail
	}
}

// heldMove starts req on a Mover of f configured by cfg, and returns once
// the move has reached step and waits there; release lets it go on (the
// step then fails with fail, if not nil), and done says how it ended.
func heldMove(t *testing.T, f *cutovertest.Fleet, cfg cutover.Config, req cutover.Request, step cutover.Step, fail error) (mover *cutover.Mover, release func(), done <-chan error) {
	t.Helper()
	reached, released := make(chan struct{}), make(chan struct{})
	cfg.BeforeStep = blockAt(step, reached, released, fail)
	mover, err := f.Mover(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := mover.Move(context.Background(), req)
		ended <- err
	}()
	<-reached
	return mover, func() { close(released) }, ended
}

// TestInstanceLocks: while a tenant moves off pg-a onto pg-b, neither
// instance can be converted, and the refusal names the instance or the
// tenant and who holds it; while pg-a is being converted, no move onto or
// off it may start.
func TestInstanceLocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-b"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for _, tn := range []struct{ id, inst string }{{"acme", "pg-a"}, {"bolt", "pg-b"}} {
		if err := f.AddTenant(ctx, tn.id, tn.id, tn.inst, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Every second mover stops at its preflight if it was not refused.
	other, err := f.Mover(&cutover.Config{Converter: f.Converter(), LockWait: -1,
		BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepPreflight {
				return errWouldRun
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}

	// A move of acme from pg-a to pg-b, held before its catch-up.
	_, release, done := heldMove(t, f, cutover.Config{}, cutover.Request{ID: "move-acme", Tenant: "acme", Target: "pg-b"},
		cutover.StepCatchUp, errors.New("stop here"))
	_, err = other.Convert(ctx, cutover.ConvertRequest{ID: "convert-b", Instance: "pg-b", NewInstance: "pg-b.1"})
	t.Logf("refused: %v", err)
	if !errors.Is(err, cutover.ErrInstanceBusy) || !strings.Contains(err.Error(), `"pg-b"`) || !strings.Contains(err.Error(), "move-acme") {
		t.Errorf("Convert of the target of a running move: %v, want a refusal naming pg-b and the move", err)
	}
	_, err = other.Convert(ctx, cutover.ConvertRequest{ID: "convert-a", Instance: "pg-a", NewInstance: "pg-a.1"})
	t.Logf("refused: %v", err)
	if !errors.Is(err, cutover.ErrMoveInProgress) || !strings.Contains(err.Error(), `"acme"`) || !strings.Contains(err.Error(), "move-acme") {
		t.Errorf("Convert of the source of a running move: %v, want a refusal naming tenant acme and the move", err)
	}
	release()
	if err := <-done; !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("the held move: %v", err)
	}

	// A conversion of pg-a, held at its first step.
	reached, releaseConvert := make(chan struct{}), make(chan struct{})
	converter, err := f.Mover(&cutover.Config{Converter: f.Converter(),
		BeforeStep: blockAt(cutover.StepPreflight, reached, releaseConvert, errors.New("stop here"))})
	if err != nil {
		t.Fatal(err)
	}
	converted := make(chan error, 1)
	go func() {
		_, err := converter.Convert(ctx, cutover.ConvertRequest{ID: "convert-a", Instance: "pg-a", NewInstance: "pg-a.1"})
		converted <- err
	}()
	<-reached
	_, err = other.Move(ctx, cutover.Request{ID: "move-bolt", Tenant: "bolt", Target: "pg-a"})
	t.Logf("refused: %v", err)
	if !errors.Is(err, cutover.ErrInstanceBusy) || !strings.Contains(err.Error(), `"pg-a"`) || !strings.Contains(err.Error(), "convert-a") {
		t.Errorf("Move onto an instance being converted: %v, want a refusal naming pg-a and the conversion", err)
	}
	close(releaseConvert)
	if err := <-converted; !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("the held conversion: %v", err)
	}
	// Once they are over, the instances are free.
	if _, err := other.Move(ctx, cutover.Request{ID: "move-bolt-2", Tenant: "bolt", Target: "pg-a"}); !errors.Is(err, errWouldRun) {
		t.Errorf("Move after the conversion ended: %v, want it to start", err)
	}
	if _, err := f.Journal.Entries(ctx, "move-bolt"); !errors.Is(err, cutover.ErrMoveNotFound) {
		t.Errorf("the refused move was journaled: %v", err)
	}
}

// TestMoveSlots: with MovesPerSource and MovesPerTarget at 1, a second
// move out of a source, or into a target, that a running move uses is
// refused with ErrInstanceBusy naming the instance, the limit and the
// running move, and starts once that move is over; a move between other
// instances is not held up.
func TestMoveSlots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a", "pg-b", "pg-c"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for _, tn := range []struct{ id, inst string }{{"acme", "pg-a"}, {"bolt", "pg-a"}, {"crux", "pg-c"}} {
		if err := f.AddTenant(ctx, tn.id, tn.id, tn.inst, ""); err != nil {
			t.Fatal(err)
		}
	}
	other, err := f.Mover(&cutover.Config{MovesPerSource: 1, MovesPerTarget: 1, LockWait: -1,
		BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepPreflight {
				return errWouldRun
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	_, release, done := heldMove(t, f, cutover.Config{MovesPerSource: 1, MovesPerTarget: 1},
		cutover.Request{ID: "move-acme", Tenant: "acme", Target: "pg-b"}, cutover.StepCatchUp, errors.New("stop here"))
	_, err = other.Move(ctx, cutover.Request{ID: "move-bolt", Tenant: "bolt", Target: "pg-c"})
	t.Logf("refused: %v", err)
	if !errors.Is(err, cutover.ErrMoveLimit) || !errors.Is(err, cutover.ErrInstanceBusy) || !strings.Contains(err.Error(), `out of instance "pg-a"`) ||
		!strings.Contains(err.Error(), "MovesPerSource") || !strings.Contains(err.Error(), "move-acme") {
		t.Errorf("a second move out of pg-a: %v, want a refusal naming pg-a, MovesPerSource and move-acme", err)
	}
	_, err = other.Move(ctx, cutover.Request{ID: "move-crux", Tenant: "crux", Target: "pg-b"})
	t.Logf("refused: %v", err)
	if !errors.Is(err, cutover.ErrMoveLimit) || !strings.Contains(err.Error(), `into instance "pg-b"`) ||
		!strings.Contains(err.Error(), "MovesPerTarget") || !strings.Contains(err.Error(), "move-acme") {
		t.Errorf("a second move into pg-b: %v, want a refusal naming pg-b, MovesPerTarget and move-acme", err)
	}
	if _, err := other.Move(ctx, cutover.Request{ID: "move-crux-a", Tenant: "crux", Target: "pg-a"}); !errors.Is(err, errWouldRun) {
		t.Errorf("a move from pg-c into pg-a, whose slots are free: %v, want it to start", err)
	}
	release()
	if err := <-done; !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("the held move: %v", err)
	}
	if _, err := other.Move(ctx, cutover.Request{ID: "move-bolt-2", Tenant: "bolt", Target: "pg-c"}); !errors.Is(err, errWouldRun) {
		t.Errorf("a move out of pg-a once the first is over: %v, want it to start", err)
	}
	for _, id := range []string{"move-bolt", "move-crux"} {
		if _, err := f.Journal.Entries(ctx, id); !errors.Is(err, cutover.ErrMoveNotFound) {
			t.Errorf("the refused %s was journaled: %v", id, err)
		}
	}
}

// TestCountingLock: a lock of N slots has at most N holders, in either
// journal; the refusal names every holder, and a released slot is taken
// by the next.
func TestCountingLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, &cutovertest.FleetConfig{Instances: []string{"pg-a"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for name, j := range map[string]cutover.Journal{"memory": &cutover.MemoryJournal{}, "postgres": f.Journal} {
		t.Run(name, func(t *testing.T) {
			lock := cutover.Lock{Key: "test.slots:" + name, Slots: 2}
			first, err := cutover.TryLock(ctx, j, "first", lock)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Release()
			second, err := cutover.TryLock(ctx, j, "second", lock)
			if err != nil {
				t.Fatalf("the second of two slots: %v", err)
			}
			_, err = cutover.TryLock(ctx, j, "third", lock)
			var conflict *cutover.LockConflictError
			if !errors.As(err, &conflict) || len(conflict.Conflicts) != 1 ||
				conflict.Conflicts[0].Holder != "first, second" {
				t.Fatalf("a third holder of two slots: %v, want a conflict naming first and second", err)
			}
			other := cutover.Lock{Key: "test.free:" + name}
			if held, err := j.(cutover.LockInspector).Held(ctx, lock, other); err != nil || !held[0] || held[1] {
				t.Errorf("Held(full counting lock, free lock) = %v, %v; want [true false]", held, err)
			}
			second.Release()
			third, err := cutover.TryLock(ctx, j, "third", lock)
			if err != nil {
				t.Fatalf("a slot released, then taken: %v", err)
			}
			if err := third.Check(ctx); err != nil {
				t.Errorf("Check of a held slot: %v", err)
			}
			third.Release()
		})
	}
}
