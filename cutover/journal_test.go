package cutover_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

func TestJournals(t *testing.T) {
	t.Parallel()
	for name, j := range journalsUnderTest(t) {
		t.Run(name, func(t *testing.T) { testJournal(t, j) })
	}
}

// journalsUnderTest returns an empty journal of each kind, by name: in
// memory, and in a control database of its own.
func journalsUnderTest(t *testing.T) map[string]cutover.Journal {
	t.Helper()
	inst := localpgtest.Start(t, nil)
	localpgtest.CreateDatabase(t, inst, "control")
	pool, err := pgxpool.New(context.Background(), inst.ConnString("control"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	pg, err := cutover.NewPostgresJournal(context.Background(), pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]cutover.Journal{"memory": &cutover.MemoryJournal{}, "postgres": pg}
}

func testJournal(t *testing.T, j cutover.Journal) {
	ctx := context.Background()
	if _, err := j.Entries(ctx, "nope"); !errors.Is(err, cutover.ErrMoveNotFound) {
		t.Errorf("Entries of an unknown move: %v", err)
	}
	if _, err := j.Append(ctx, cutover.Entry{Move: "m", Status: cutover.StatusStarted}); err == nil {
		t.Error("an entry without a step was accepted")
	}
	add := func(move string, step cutover.Step, status cutover.Status, detail any) {
		t.Helper()
		var raw json.RawMessage
		if detail != nil {
			raw, _ = json.Marshal(detail)
		}
		if _, err := j.Append(ctx, cutover.Entry{Move: move, Step: step, Status: status, Detail: raw}); err != nil {
			t.Fatal(err)
		}
	}
	add("m1", cutover.StepPlan, cutover.StatusFinished, map[string]string{"tenant": "t1"})
	add("m2", cutover.StepPlan, cutover.StatusFinished, nil)
	add("m1", cutover.StepFence, cutover.StatusStarted, nil)
	add("m1", cutover.StepFence, cutover.StatusFinished, nil)
	add("m2", cutover.StepRolledBack, cutover.StatusFinished, map[string]string{"reason": "budget"})

	// Concurrent appends to one move get distinct, gapless sequence numbers.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { add("m3", cutover.StepCatchUp, cutover.StatusStarted, map[string]int{"i": i}) })
	}
	wg.Wait()

	es, err := j.Entries(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for i, e := range es {
		steps = append(steps, fmt.Sprintf("%d:%s/%s", e.Seq, e.Step, e.Status))
		if e.Seq != int64(i+1) || e.At.IsZero() {
			t.Errorf("entry %d: seq %d at %v", i, e.Seq, e.At)
		}
	}
	if want := []string{"1:plan/finished", "2:fence/started", "3:fence/finished"}; !slices.Equal(steps, want) {
		t.Errorf("m1 entries %v, want %v", steps, want)
	}
	var plan map[string]string
	if err := json.Unmarshal(es[0].Detail, &plan); err != nil || plan["tenant"] != "t1" {
		t.Errorf("plan detail %s: %v", es[0].Detail, err)
	}
	m3, _ := j.Entries(ctx, "m3")
	for i, e := range m3 {
		if e.Seq != int64(i+1) {
			t.Errorf("m3 entry %d has seq %d", i, e.Seq)
		}
	}
	// Terminal by step and status together: a Retire that failed leaves
	// its move open, one that finished closes it.
	add("m4", cutover.StepDone, cutover.StatusFinished, nil)
	add("m4", cutover.StepRetire, cutover.StatusStarted, nil)
	add("m4", cutover.StepRetire, cutover.StatusFailed, map[string]string{"error": "unreachable"})
	add("m5", cutover.StepDone, cutover.StatusFinished, nil)
	add("m5", cutover.StepRetire, cutover.StatusStarted, nil)
	add("m5", cutover.StepRetire, cutover.StatusFinished, nil)
	// A chain's journal is of its own kind.
	if _, err := j.Append(ctx, cutover.Entry{Move: "c1", Kind: cutover.KindChain, Seq: 1, Step: "chain_plan", Status: cutover.StatusFinished}); err != nil {
		t.Fatal(err)
	}
	add("c1", "chain_drain", cutover.StatusStarted, nil)
	if _, err := j.Append(ctx, cutover.Entry{Move: "c1", Kind: cutover.KindMove, Step: cutover.StepPlan, Status: cutover.StatusStarted}); err == nil {
		t.Error("an entry of another kind was appended to a chain's journal")
	}
	if es, _ := j.Entries(ctx, "c1"); len(es) != 2 || es[0].Kind != cutover.KindChain || es[1].Kind != cutover.KindChain {
		t.Errorf("chain entries %+v, want 2 of kind chain", es)
	}
	if es, _ := j.Entries(ctx, "m1"); es[0].Kind != cutover.KindMove {
		t.Errorf("a kindless journal's kind is %q, want %q", es[0].Kind, cutover.KindMove)
	}
	// An entry with Seq 1 begins a journal, or is refused.
	_, err = j.Append(ctx, cutover.Entry{Move: "m2", Seq: 1, Step: cutover.StepPlan, Status: cutover.StatusStarted})
	if !errors.Is(err, cutover.ErrMoveIDUsed) || !strings.Contains(err.Error(), "rolled_back") {
		t.Errorf("a first entry for a used ID: %v, want ErrMoveIDUsed saying how it ended", err)
	}
	if es, _ := j.Entries(ctx, "m2"); len(es) != 2 {
		t.Errorf("the refused first entry was appended: %d entries", len(es))
	}
	if e, err := j.Append(ctx, cutover.Entry{Move: "m6", Seq: 1, Step: cutover.StepPlan, Status: cutover.StatusStarted}); err != nil || e.Seq != 1 {
		t.Errorf("a first entry for a new ID: %+v, %v", e, err)
	}

	open, err := j.Open(ctx, cutover.KindMove)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(open, []string{"m1", "m3", "m4", "m6"}) {
		t.Errorf("open moves %v, want [m1 m3 m4 m6] (m2 rolled back, m5 retired, c1 a chain)", open)
	}
	if open, err := j.Open(ctx, cutover.KindChain); err != nil || !slices.Equal(open, []string{"c1"}) {
		t.Errorf("open chains %v (%v), want [c1]", open, err)
	}
}
