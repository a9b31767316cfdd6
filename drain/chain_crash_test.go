package drain_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/drain"
)

const chainChildEnv = "DRAIN_CHAIN_CHILD"

type chainChild struct {
	ControlURL string `json:"control_url"`
	Chain      string `json:"chain"`
}

// TestChainChild is the child's side of TestChainResumedAfterKill: it runs
// the chain and, in the middle of pg-a's conversion, says so and waits to
// be killed.
func TestChainChild(t *testing.T) {
	var c chainChild
	if !cutovertest.ChildArg(t, chainChildEnv, &c) {
		t.Skip("the child of TestChainResumedAfterKill: it runs in the process that test starts")
	}
	ctx := context.Background()
	control, err := cutovertest.OpenControl(ctx, c.ControlURL)
	if err != nil {
		t.Fatal(err)
	}
	// The conversion's replica is this process's child and dies with it,
	// as a half-built replica would: Resume must roll the conversion back.
	mover, err := control.Mover(&cutover.Config{
		Converter:    cutovertest.LocalConverter(),
		WindowBudget: time.Minute,
		BeforeStep: func(_ context.Context, move string, s cutover.Step) error {
			if strings.HasPrefix(move, c.Chain+"-convert-pg-a") && s == cutover.StepFence {
				cutovertest.Reached(move + " " + string(s))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: control.Catalog, Mover: mover, Journal: control.Journal})
	if err != nil {
		t.Fatal(err)
	}
	_, err = runner.Chain(ctx, drain.ChainRequest{ID: c.Chain, Instances: []string{"pg-a", "pg-b"},
		Spares: []string{"pg-s"}, Threshold: drain.Threshold{MaxTenants: 1}})
	fmt.Printf("CHAIN ENDED WITHOUT THE KILL: %v\n", err)
	os.Exit(3)
}

// TestChainResumedAfterKill runs the chain in a child process, kills it
// with SIGKILL in the middle of the first conversion's window, and resumes
// the chain from this process: it completes with every tenant on a
// converted instance and every acknowledged write there.
func TestChainResumedAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a chain twice over")
	}
	t.Parallel()
	ctx := context.Background()
	f, workloads := chainFleet(t)
	cutovertest.KillChildAt(t, "TestChainChild", chainChildEnv, chainChild{ControlURL: f.URL, Chain: "chain-k"})

	mover, err := f.Mover(&cutover.Config{Converter: f.Converter(), WindowBudget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := drain.New(&drain.Config{Catalog: f.Catalog, Mover: mover, Journal: f.Journal})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runner.ResumeChain(ctx, "chain-k")
	if err != nil {
		t.Fatalf("resume chain: %v", err)
	}
	t.Logf("%s", res)
	checkChainEnd(t, f, workloads)
	if open := openJournals(t, f); len(open) != 0 {
		t.Errorf("open moves after the resumed chain: %v", open)
	}
}
