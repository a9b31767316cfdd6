package cutover_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/flags"
)

// TestUsedIDRefusedAndFailedRetireRetried: a move ID that a finished move
// or an open one already has is refused, changing nothing; a Retire is
// refused, dropping nothing, while the catalog or the route has the
// tenant off the move's target; a Retire that failed leaves the move open
// and is done by the next Retire, which drops the source copy.
func TestUsedIDRefusedAndFailedRetireRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startFleet(t)
	var retires atomic.Int32
	mover, err := f.Mover(&cutover.Config{WindowBudget: 30 * time.Second,
		BeforeStep: func(_ context.Context, _ string, s cutover.Step) error {
			if s == cutover.StepRetire && retires.Add(1) == 1 {
				return errors.New("injected: the source is unreachable")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mover.Move(ctx, cutover.Request{ID: "m", Tenant: "acme", Target: "pg-b"}); err != nil {
		t.Fatal(err)
	}

	// The ID of a finished move.
	before := entries(t, f.Journal, "m")
	if _, err := mover.Move(ctx, cutover.Request{ID: "m", Tenant: "acme", Target: "pg-a"}); !errors.Is(err, cutover.ErrMoveIDUsed) || !strings.Contains(err.Error(), `"m"`) {
		t.Errorf("a Move with the ID of a finished move: %v, want ErrMoveIDUsed naming it", err)
	}
	if tn, _ := f.Catalog.Locate(ctx, "acme"); tn.Instance != "pg-b" {
		t.Errorf("the refused move moved the tenant to %q", tn.Instance)
	}
	if after := entries(t, f.Journal, "m"); len(after) != len(before) {
		t.Errorf("the refused move wrote to the finished move's journal: %d entries, was %d", len(after), len(before))
	}
	// The ID of an open move (one that crashed right after it began).
	if _, err := f.Journal.Append(ctx, cutover.Entry{Move: "crashed", Step: cutover.StepPlan, Status: cutover.StatusStarted}); err != nil {
		t.Fatal(err)
	}
	if _, err := mover.Move(ctx, cutover.Request{ID: "crashed", Tenant: "acme", Target: "pg-a"}); !errors.Is(err, cutover.ErrMoveIDUsed) || !strings.Contains(err.Error(), "Resume") {
		t.Errorf("a Move with the ID of an open move: %v, want ErrMoveIDUsed saying to Resume it", err)
	}
	if es := entries(t, f.Journal, "crashed"); len(es) != 1 {
		t.Errorf("the refused move wrote to the open move's journal: %d entries", len(es))
	}

	// Off the move's target, by the catalog, then by the route.
	if err := f.Catalog.Assign(ctx, "acme", "pg-a", nil); err != nil {
		t.Fatal(err)
	}
	if err := mover.Retire(ctx, "m"); !errors.Is(err, cutover.ErrNotRetirable) || !strings.Contains(err.Error(), `the catalog has tenant "acme" on "pg-a"`) {
		t.Errorf("Retire with the catalog's tenant on the source: %v, want ErrNotRetirable naming the catalog's instance", err)
	}
	if err := f.Catalog.Assign(ctx, "acme", "pg-b", nil); err != nil {
		t.Fatal(err)
	}
	publishAndSee(t, f, "acme", "pg-a")
	if err := mover.Retire(ctx, "m"); !errors.Is(err, cutover.ErrNotRetirable) || !strings.Contains(err.Error(), `tenant "acme" is routed to "pg-a"`) {
		t.Errorf("Retire with the tenant routed to the source: %v, want ErrNotRetirable naming the route's instance", err)
	}
	publishAndSee(t, f, "acme", "pg-b")
	if !databaseExists(t, f, "pg-a", "acme") {
		t.Fatal("a refused Retire dropped the source")
	}

	// A Retire that fails leaves the move open and the source in place.
	if err := mover.Retire(ctx, "m"); err == nil {
		t.Fatal("the injected Retire failure was not reported")
	}
	if open, _ := f.Journal.Open(ctx, cutover.KindMove); !slices.Contains(open, "m") {
		t.Errorf("open moves after a failed Retire: %v, want m listed", open)
	}
	if !databaseExists(t, f, "pg-a", "acme") {
		t.Fatal("the failed Retire dropped the source")
	}
	// The next one does it.
	if err := mover.Retire(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if databaseExists(t, f, "pg-a", "acme") {
		t.Error("the source copy is still there after the second Retire")
	}
	if open, _ := f.Journal.Open(ctx, cutover.KindMove); slices.Contains(open, "m") {
		t.Errorf("open moves after Retire: %v, want m not listed", open)
	}
}

func entries(t *testing.T, j cutover.Journal, move string) []cutover.Entry {
	t.Helper()
	es, err := j.Entries(context.Background(), move)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// publishAndSee publishes a route of tenant to instance, at the epoch
// after the published one, and waits until the fleet's Routes resolve it.
func publishAndSee(t *testing.T, f *cutovertest.Fleet, tenant, instance string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cur, _, err := f.Publisher.Published(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := f.Catalog.Instance(ctx, instance)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Publisher.Publish(ctx, tenant, flags.RouteTo(inst, tenant, cur.Epoch+1)); err != nil {
		t.Fatal(err)
	}
	for {
		route, err := f.Routes.Resolve(ctx, tenant)
		if err == nil && route.Instance == instance {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the Routes did not resolve %s to %s: %v, %v", tenant, instance, route, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
