package main

import (
	"fmt"
	"io"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/internal/bytesize"
)

// ctrlCNote says what an interrupt does to a run, for the help of every
// command that moves tenants.
const ctrlCNote = `Ctrl-C (or SIGTERM) cancels: a move or conversion that has not switched
rolls back (the tenant stays on its source, the copy is removed) before the
command exits; one that has switched stops where it is and stays open in the
journal: "daisychain resume <id>" completes it. If the command is killed
instead, every move it ran stays open for resume, which completes the ones
that switched and rolls back the others.`

// printMoveReport prints a move's or a conversion's report and returns
// err, saying how to go on when the move was left open.
func printMoveReport(inv *invocation, rep *cutover.Report, err error) error {
	if inv.g.json {
		doc := map[string]any{"report": rep}
		if rep != nil {
			doc["window_ms"] = ms(rep.Window)
		}
		return writeDoc(inv, doc, err)
	}
	if rep != nil {
		fmt.Fprint(inv.stdout, rep.String())
		if err != nil && !rep.RolledBack {
			fmt.Fprintf(inv.stderr, "move %s is open: \"daisychain resume %s\" completes or rolls it back\n", rep.Move, rep.Move)
		}
	}
	return err
}

// moveLine is one move of a drain, a refill or a chain, for a table.
type moveLine struct {
	Tenant   string  `json:"tenant"`
	From     string  `json:"from"`
	To       string  `json:"to"`
	Move     string  `json:"move,omitempty"`
	Outcome  string  `json:"outcome"`
	WindowMS float64 `json:"window_ms"`
	Bytes    int64   `json:"bytes_copied"`
	TotalMS  float64 `json:"total_ms"`
	Error    string  `json:"error,omitempty"`
}

func newMoveLine(tenant, from, to string, rep *cutover.Report, err error) moveLine {
	l := moveLine{Tenant: tenant, From: from, To: to, Outcome: "moved"}
	if rep != nil {
		l.Move, l.WindowMS, l.Bytes, l.TotalMS = rep.Move, ms(rep.Window), rep.BytesCopied, ms(rep.Finished.Sub(rep.Started))
		if rep.RolledBack {
			l.Outcome = "rolled back"
		}
	}
	if err != nil {
		l.Error = err.Error()
		if l.Outcome == "moved" {
			l.Outcome = "failed"
		}
	}
	return l
}

func printMoveLines(w io.Writer, lines []moveLine) {
	if len(lines) == 0 {
		return
	}
	t := newTable(w)
	fmt.Fprintln(t, "  TENANT\tFROM -> TO\tOUTCOME\tWINDOW\tCOPIED\tTOTAL\tMOVE")
	for _, l := range lines {
		fmt.Fprintf(t, "  %s\t%s -> %s\t%s\t%s\t%s\t%s\t%s\n", l.Tenant, l.From, l.To, l.Outcome,
			fromMS(l.WindowMS).Round(time.Millisecond), bytesize.Format(l.Bytes), fromMS(l.TotalMS).Round(100*time.Millisecond), orDash(l.Move))
	}
	t.Flush()
	for _, l := range lines {
		if l.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", l.Tenant, l.Error)
		}
	}
}

func fromMS(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
