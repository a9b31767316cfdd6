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
	reached, release := make(chan struct{}), make(chan struct{})
	mover, err := f.Mover(&cutover.Config{BeforeStep: blockAt(cutover.StepCatchUp, reached, release, errors.New("stop here"))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := mover.Move(ctx, cutover.Request{ID: "move-acme", Tenant: "acme", Target: "pg-b"})
		done <- err
	}()
	<-reached
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
	close(release)
	if err := <-done; !errors.Is(err, cutover.ErrRolledBack) {
		t.Fatalf("the held move: %v", err)
	}

	// A conversion of pg-a, held at its first step.
	reached, release = make(chan struct{}), make(chan struct{})
	converter, err := f.Mover(&cutover.Config{Converter: f.Converter(),
		BeforeStep: blockAt(cutover.StepPreflight, reached, release, errors.New("stop here"))})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := converter.Convert(ctx, cutover.ConvertRequest{ID: "convert-a", Instance: "pg-a", NewInstance: "pg-a.1"})
		done <- err
	}()
	<-reached
	_, err = other.Move(ctx, cutover.Request{ID: "move-bolt", Tenant: "bolt", Target: "pg-a"})
	t.Logf("refused: %v", err)
	if !errors.Is(err, cutover.ErrInstanceBusy) || !strings.Contains(err.Error(), `"pg-a"`) || !strings.Contains(err.Error(), "convert-a") {
		t.Errorf("Move onto an instance being converted: %v, want a refusal naming pg-a and the conversion", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, cutover.ErrRolledBack) {
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
