// Command quickstart moves a tenant database between two throwaway local
// PostgreSQL instances while an application keeps writing to it, and
// checks that every write the application was told had committed is on
// the target.
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -json
//
// It starts three localpg instances (control, pg-a, pg-b), creates tenant
// "acme" on pg-a with a shop schema, runs an application that writes
// through the Router on several connections without pause, moves the
// tenant to pg-b with cutover, and prints a report. It needs only Go and
// the PostgreSQL server package. It exits 1 if the move rolled back, a
// write is missing, the application got an error, or the application
// waited longer than the window budget.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
)

// summary is the -json output.
type summary struct {
	Tenant             string  `json:"tenant"`
	From               string  `json:"from"`
	To                 string  `json:"to"`
	WindowMS           float64 `json:"window_ms"`
	LibraryWindowMS    float64 `json:"library_window_ms"`
	WindowBudgetMS     float64 `json:"window_budget_ms"`
	AppErrors          int64   `json:"app_errors"`
	AcknowledgedWrites int64   `json:"acknowledged_writes"`
	MissingWrites      int64   `json:"missing_writes"`
	RolledBack         bool    `json:"rolled_back"`
	RollbackReason     string  `json:"rollback_reason,omitempty"`
	Verified           string  `json:"verified"`
	BytesCopied        int64   `json:"bytes_copied"`
	TotalMS            float64 `json:"total_ms"`
}

func main() {
	asJSON := flag.Bool("json", false, "print one JSON object instead of the readable report")
	workers := flag.Int("workers", 4, "application connections writing without pause")
	flag.Parse()
	log.SetFlags(0)
	s, err := run(context.Background(), os.Stdout, *asJSON, *workers)
	if err != nil {
		log.Fatalf("quickstart: %v", err)
	}
	if problems := s.problems(); len(problems) > 0 {
		log.Printf("quickstart: %s", strings.Join(problems, "; "))
		os.Exit(1)
	}
}

// problems says what makes the run a failure: the exit status is 1 if
// there is any, so a script (or CI) can rely on it.
func (s summary) problems() []string {
	var out []string
	if s.RolledBack {
		out = append(out, "the move rolled back: "+s.RollbackReason)
	}
	if s.MissingWrites > 0 {
		out = append(out, fmt.Sprintf("%d acknowledged writes missing", s.MissingWrites))
	}
	if s.AppErrors > 0 {
		out = append(out, fmt.Sprintf("the application got %d errors", s.AppErrors))
	}
	if s.WindowMS > s.WindowBudgetMS {
		out = append(out, fmt.Sprintf("the application waited %.0f ms, over the %.0f ms window budget", s.WindowMS, s.WindowBudgetMS))
	}
	return out
}

func run(ctx context.Context, out io.Writer, asJSON bool, workers int) (summary, error) {
	start := time.Now()
	say := func(format string, args ...any) {
		if !asJSON {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	say("starting local PostgreSQL instances: control, pg-a, pg-b ...")
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		return summary{}, err
	}
	defer f.Close()

	const tenant = "acme"
	say("creating tenant %q on pg-a: 12 tables, foreign keys, sequences, %s", tenant, "about 15,000 rows")
	if err := f.AddTenant(ctx, tenant, tenant, "pg-a", shopSchema); err != nil {
		return summary{}, err
	}
	mover, err := f.Mover(&cutover.Config{WindowBudget: 10 * time.Second})
	if err != nil {
		return summary{}, err
	}
	events, stop := mover.Subscribe(cutover.EventStepFinished, cutover.EventRolledBack)
	defer stop()
	go func() {
		for e := range events {
			if e.Kind == cutover.EventStepFinished {
				status := "ok"
				if e.Err != nil {
					status = "failed: " + e.Err.Error()
				}
				say("  %-15s %8s  %s", e.Step, e.Elapsed.Round(100*time.Microsecond), status)
			}
		}
	}()

	say("application: %d connections writing through the Router ...", workers)
	w := cutovertest.StartWorkload(f.Router, tenant, workers)
	time.Sleep(500 * time.Millisecond)
	w.ResetGap()
	say("moving %s from pg-a to pg-b:", tenant)
	rep, moveErr := mover.Move(ctx, cutover.Request{Tenant: tenant, Target: "pg-b"})
	time.Sleep(500 * time.Millisecond)
	stats := w.Stop()
	stop()
	if rep == nil {
		return summary{}, moveErr
	}

	where := "pg-b"
	if rep.RolledBack {
		where = "pg-a"
	}
	conn, err := f.Instances[where].Connect(ctx, tenant)
	if err != nil {
		return summary{}, err
	}
	defer conn.Close(ctx)
	missing, err := w.Missing(ctx, conn)
	if err != nil {
		return summary{}, err
	}
	s := summary{
		Tenant: tenant, From: "pg-a", To: "pg-b",
		WindowMS:           ms(stats.MaxGap),
		LibraryWindowMS:    ms(rep.Window),
		WindowBudgetMS:     ms(rep.WindowBudget),
		AppErrors:          stats.Errors,
		AcknowledgedWrites: stats.Acknowledged,
		MissingWrites:      missing,
		RolledBack:         rep.RolledBack,
		RollbackReason:     rep.RollbackReason,
		Verified:           rep.Verified.String(),
		BytesCopied:        rep.BytesCopied,
		TotalMS:            ms(time.Since(start)),
	}
	if asJSON {
		if err := json.NewEncoder(out).Encode(s); err != nil {
			return s, err
		}
	} else {
		outcome := "moved to pg-b"
		if rep.RolledBack {
			outcome = "rolled back, still on pg-a: " + rep.RollbackReason
		}
		say("")
		say("%s: %s", tenant, outcome)
		say("window as the library measured it: %.0f ms (budget %s), fences: %s, verified: %s, %d bytes copied",
			s.LibraryWindowMS, rep.WindowBudget, strings.Join(rep.Fences, " + "), s.Verified, s.BytesCopied)
		say("application saw: %d acknowledged writes, %d errors, longest pause between writes %.0f ms",
			s.AcknowledgedWrites, s.AppErrors, s.WindowMS)
		say("on %s: %d of the acknowledged writes missing", where, s.MissingWrites)
		say("done in %s", time.Since(start).Round(time.Millisecond))
	}
	if moveErr != nil && !errors.Is(moveErr, cutover.ErrRolledBack) {
		return s, moveErr
	}
	return s, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
