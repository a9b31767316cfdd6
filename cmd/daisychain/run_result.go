package main

import (
	"time"

	"fmt"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/internal/bytesize"
)

// runResult is what a drain or a refill did, for print and JSON.
type runResult struct {
	Kind      string       `json:"kind"`
	Instance  string       `json:"instance"`
	Moved     []moveLine   `json:"moved"`
	Failed    []moveLine   `json:"failed"`
	Before    drain.Totals `json:"before"`
	After     drain.Totals `json:"after"`
	ElapsedMS float64      `json:"elapsed_ms"`
}

func newRunResult(kind, instance string, res *drain.Result) runResult {
	out := runResult{Kind: kind, Instance: instance, Moved: []moveLine{}, Failed: []moveLine{}}
	if res == nil {
		return out
	}
	for _, m := range res.Moved {
		out.Moved = append(out.Moved, newMoveLine(m.Move.Tenant, m.Move.From, m.Move.To, m.Report, m.Err))
	}
	for _, m := range res.Failed {
		out.Failed = append(out.Failed, newMoveLine(m.Move.Tenant, m.Move.From, m.Move.To, m.Report, m.Err))
	}
	out.Before, out.After, out.ElapsedMS = res.Before, res.After, ms(res.Elapsed)
	return out
}

// printRunResult prints a drain's or a refill's result (nil when it
// did not start) and returns err.
func printRunResult(inv *invocation, kind, instance string, res *drain.Result, err error) error {
	r := newRunResult(kind, instance, res)
	if inv.g.json {
		doc := map[string]any{"result": r}
		if res != nil && res.Plan != nil {
			doc["plan"] = res.Plan
		}
		return writeDoc(inv, doc, err)
	}
	if res == nil {
		return err
	}
	if len(r.Moved)+len(r.Failed) == 0 && res.Plan != nil {
		// Nothing ran: the plan says why (a threshold already held, or
		// tenants that fit nowhere).
		fmt.Fprint(inv.stdout, res.Plan.String())
	}
	fmt.Fprintf(inv.stdout, "%s %s: %d moved, %d failed in %s; %s now holds %d tenants, %d files, %s (before: %d, %d, %s)\n",
		kind, instance, len(r.Moved), len(r.Failed), fromMS(r.ElapsedMS).Round(100*time.Millisecond), instance,
		r.After.Tenants, r.After.Files, bytesize.Format(r.After.Bytes), r.Before.Tenants, r.Before.Files, bytesize.Format(r.Before.Bytes))
	printMoveLines(inv.stdout, append(r.Moved, r.Failed...))
	return err
}
