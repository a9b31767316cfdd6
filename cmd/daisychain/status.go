package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
)

func init() {
	register(&command{
		name:    "status",
		summary: "open and recent moves, conversions, drains and chains, from the journal",
		help: `Lists every open journal (a move, conversion, drain or chain that has not
ended: running, or interrupted and waiting for resume), then the newest ones
that ended, newest first, at most --limit of them (since --since, if given).
For each: its ID, kind, tenant, source -> target, last step, state (open,
done, rolled back, retired), window and error.

The window is read from the journal: from the entry that opened it (pause,
or the first fence) to the one that closed it (switch, or the rollback), on
the control database's clock. The report of the run that made the move has
the library's own measure.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			limit := fs.Int("limit", cutover.RecentLimitDefault, "show at most this many journals that ended")
			since := fs.Duration("since", 0, "show only journals begun within this `DURATION` (as 24h); default: no bound but --limit")
			return func(ctx context.Context, inv *invocation) (err error) {
				if len(inv.args) != 0 {
					return usagef("status takes no arguments, got %q", inv.args)
				}
				if *limit < 1 {
					return usagef("--limit %d: give 1 or more", *limit)
				}
				if *since < 0 {
					return usagef("--since %s: give a positive duration, as 24h", *since)
				}
				h, err := openControl(ctx, inv.g, inv.stderr)
				if err != nil {
					return err
				}
				defer func() { err = errors.Join(err, h.Close()) }()
				opts := &cutover.RecentOpts{Limit: *limit}
				if *since > 0 {
					opts.Since = time.Now().Add(-*since)
				}
				rows, err := journalRows(ctx, h.journal, opts)
				if err != nil {
					return err
				}
				if inv.g.json {
					return writeJSON(inv.stdout, map[string]any{"journals": rows})
				}
				printStatus(inv.stdout, rows)
				return nil
			}
		},
	})
}

// journalRow is what status says of one journal.
type journalRow struct {
	ID string `json:"id"`
	// Kind is move, conversion, drain, refill or chain.
	Kind string `json:"kind"`
	// Tenant is a move's tenant, or how many tenants a run has.
	Tenant string `json:"tenant"`
	Source string `json:"source"`
	Target string `json:"target"`
	// Step and StepStatus are the journal's last entry.
	Step       string `json:"step"`
	StepStatus string `json:"step_status"`
	// State is open, done, rolled back or retired.
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	LastAt   time.Time `json:"last_at"`
	WindowMS *float64  `json:"window_ms,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// journalRows reads the open journals of every kind and the recent ones,
// each once, open first.
func journalRows(ctx context.Context, j cutover.Journal, opts *cutover.RecentOpts) ([]journalRow, error) {
	var ids []string
	for _, kind := range []cutover.Kind{cutover.KindMove, cutover.KindDrain, cutover.KindChain} {
		open, err := j.Open(ctx, kind)
		if err != nil {
			return nil, err
		}
		ids = append(ids, open...)
	}
	if lister, ok := j.(cutover.RecentLister); ok {
		recent, err := lister.Recent(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, r := range recent {
			if !slices.Contains(ids, r.ID) {
				ids = append(ids, r.ID)
			}
		}
	}
	rows := make([]journalRow, 0, len(ids))
	for _, id := range ids {
		entries, err := j.Entries(ctx, id)
		if errors.Is(err, cutover.ErrMoveNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		rows = append(rows, summarize(id, entries))
	}
	return rows, nil
}

// summarize reads a journal's entries as a row.
func summarize(id string, entries []cutover.Entry) journalRow {
	first, last := entries[0], entries[len(entries)-1]
	row := journalRow{ID: id, Kind: string(first.Kind), Step: string(last.Step), StepStatus: string(last.Status),
		State: "open", Started: first.At, LastAt: last.At}
	if last.Terminal() {
		row.State = map[cutover.Step]string{cutover.StepDone: "done", cutover.StepRolledBack: "rolled back", cutover.StepRetire: "retired"}[last.Step]
	}
	switch first.Kind {
	case cutover.KindMove:
		describeMove(&row, id, entries)
	case cutover.KindDrain:
		describeDrain(&row, entries)
	case cutover.KindChain:
		describeChain(&row, entries)
	}
	if opened, closed := window(entries); !opened.IsZero() && !closed.IsZero() {
		w := ms(closed.Sub(opened))
		row.WindowMS = &w
	}
	if row.State == "done" || row.State == "retired" {
		// A step that failed and was run again (by a resume) is history.
		return row
	}
	for _, e := range entries {
		var d struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		if e.Status == cutover.StatusFailed || e.Step == cutover.StepRolledBack {
			_ = json.Unmarshal(e.Detail, &d)
			if msg := cmp.Or(d.Error, d.Reason); msg != "" {
				row.Error = fmt.Sprintf("%s: %s", e.Step, msg)
			}
		}
	}
	return row
}

// describeMove fills a move's or a conversion's tenant and instances
// from its journaled plan.
func describeMove(row *journalRow, id string, entries []cutover.Entry) {
	p, found, err := cutover.PlannedIn(id, entries)
	if err != nil || !found {
		return
	}
	if p.Conversion {
		row.Kind, row.Tenant, row.Source, row.Target = "conversion", "all of "+p.Instance, p.Instance, p.NewInstance
		return
	}
	row.Tenant, row.Source, row.Target = p.Tenant, p.Source, p.Target
}

// describeDrain fills a drain's or a refill's (run as jobs) from its
// journaled plan.
func describeDrain(row *journalRow, entries []cutover.Entry) {
	var p struct {
		Kind     string   `json:"kind"`
		Instance string   `json:"instance"`
		Sources  []string `json:"sources"`
		Moves    []struct {
			To string `json:"to"`
		} `json:"moves"`
	}
	if json.Unmarshal(entries[0].Detail, &p) != nil {
		return
	}
	row.Kind = p.Kind
	row.Tenant = fmt.Sprintf("%d tenants", len(p.Moves))
	if p.Kind == "refill" {
		row.Source, row.Target = strings.Join(p.Sources, ","), p.Instance
		return
	}
	var to []string
	for _, m := range p.Moves {
		if !slices.Contains(to, m.To) {
			to = append(to, m.To)
		}
	}
	row.Source, row.Target = p.Instance, strings.Join(to, ",")
}

// describeChain fills a chain's instances, and the ones they become,
// from its journaled plan.
func describeChain(row *journalRow, entries []cutover.Entry) {
	var p struct {
		Instances []string          `json:"instances"`
		NewIDs    map[string]string `json:"new_ids"`
	}
	if json.Unmarshal(entries[0].Detail, &p) != nil {
		return
	}
	var to []string
	for _, inst := range p.Instances {
		to = append(to, p.NewIDs[inst])
	}
	row.Source, row.Target = strings.Join(p.Instances, ","), strings.Join(to, ",")
}

// window is when the journal says the last window opened (the route
// paused, or the first fence went up) and closed (the switch, or the
// rollback that reopened the source); zero when it did not.
func window(entries []cutover.Entry) (opened, closed time.Time) {
	for _, e := range entries {
		switch {
		case e.Status == cutover.StatusStarted && (e.Step == cutover.StepPause || e.Step == cutover.StepFence) && (opened.IsZero() || !closed.IsZero()):
			opened, closed = e.At, time.Time{}
		case e.Status == cutover.StatusFinished && (e.Step == cutover.StepSwitch || e.Step == cutover.StepRollback) && !opened.IsZero() && closed.IsZero():
			closed = e.At
		}
	}
	return opened, closed
}

func printStatus(w io.Writer, rows []journalRow) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no moves, conversions, drains or chains in the journal")
		return
	}
	t := newTable(w)
	fmt.Fprintln(t, "ID\tKIND\tTENANT\tSOURCE -> TARGET\tLAST STEP\tSTATE\tWINDOW\tSTARTED")
	for _, r := range rows {
		win := "-"
		if r.WindowMS != nil {
			win = (time.Duration(*r.WindowMS * float64(time.Millisecond))).Round(time.Millisecond).String()
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s -> %s\t%s (%s)\t%s\t%s\t%s\n", r.ID, r.Kind, orDash(r.Tenant),
			orDash(r.Source), orDash(r.Target), r.Step, r.StepStatus, r.State, win, r.Started.Local().Format(time.DateTime))
	}
	t.Flush()
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", r.ID, r.Error)
		}
	}
}
