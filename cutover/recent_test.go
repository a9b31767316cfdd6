package cutover_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
)

// TestRecent lists the newest journals of both journals an operator's
// status reads: newest first, bounded, by kind and since a time, each
// saying whether it is open.
func TestRecent(t *testing.T) {
	t.Parallel()
	for name, j := range journalsUnderTest(t) {
		t.Run(name, func(t *testing.T) { testRecent(t, j) })
	}
}

func testRecent(t *testing.T, j cutover.Journal) {
	ctx := context.Background()
	lister, ok := j.(cutover.RecentLister)
	if !ok {
		t.Fatalf("%T is not a cutover.RecentLister", j)
	}
	add := func(move string, kind cutover.Kind, step cutover.Step) time.Time {
		t.Helper()
		e, err := j.Append(ctx, cutover.Entry{Move: move, Kind: kind, Step: step, Status: cutover.StatusFinished})
		if err != nil {
			t.Fatal(err)
		}
		return e.At
	}
	add("old", cutover.KindMove, cutover.StepPlan)
	// Since falls between old's start and open's, on the journal's clock.
	since := add("old", cutover.KindMove, cutover.StepDone).Add(5 * time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	add("open", cutover.KindMove, cutover.StepPlan)
	add("chain", cutover.KindChain, "chain_plan")
	add("rolled", cutover.KindMove, cutover.StepPlan)
	add("rolled", cutover.KindMove, cutover.StepRolledBack)

	ids := func(js []cutover.Journaled) (out []string) {
		for _, r := range js {
			out = append(out, r.ID)
		}
		return out
	}
	all, err := lister.Recent(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), []string{"rolled", "chain", "open", "old"}; !slices.Equal(got, want) {
		t.Fatalf("Recent(nil) = %v, want %v (newest first)", got, want)
	}
	for _, r := range all {
		wantOpen := r.ID == "open" || r.ID == "chain"
		wantKind := cutover.KindMove
		if r.ID == "chain" {
			wantKind = cutover.KindChain
		}
		if r.Open != wantOpen || r.Kind != wantKind || r.Started.IsZero() {
			t.Errorf("%s: %+v, want open %v, kind %s and its start", r.ID, r, wantOpen, wantKind)
		}
	}
	if got, err := lister.Recent(ctx, &cutover.RecentOpts{Limit: 2}); err != nil || !slices.Equal(ids(got), []string{"rolled", "chain"}) {
		t.Errorf("Limit 2: %v (%v), want the newest two", ids(got), err)
	}
	if got, err := lister.Recent(ctx, &cutover.RecentOpts{Kind: cutover.KindMove}); err != nil || !slices.Equal(ids(got), []string{"rolled", "open", "old"}) {
		t.Errorf("moves: %v (%v), want the three moves", ids(got), err)
	}
	if got, err := lister.Recent(ctx, &cutover.RecentOpts{Since: since}); err != nil || !slices.Equal(ids(got), []string{"rolled", "chain", "open"}) {
		t.Errorf("since %v: %v (%v), want all but old", since, ids(got), err)
	}
	for _, bad := range []*cutover.RecentOpts{{Limit: -1}, {Kind: "moves"}} {
		if _, err := lister.Recent(ctx, bad); !errors.Is(err, cutover.ErrInvalidConfig) {
			t.Errorf("Recent(%+v): %v, want ErrInvalidConfig", *bad, err)
		}
	}
}
