// Command quickstart moves a tenant database between two PostgreSQL
// instances while an application keeps writing to it, and checks that
// every write the application was told had committed is on the target.
// It is what an application that embeds daisychain writes: the catalog,
// the route provider behind an OpenFeature API of its own, the Resolver,
// the Router, the journal and the Mover, wired by hand from connection
// strings, and request handlers that write through the Router (package
// examples/internal/host, shared with the daisy chain example).
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -json
//	go run ./examples/quickstart -revert -json
//	go run ./examples/quickstart -control URL -instance pg-a=URL -instance pg-b=URL \
//	    -tenant acme -database acme -from pg-a -to pg-b
//
// Without -control it starts three throwaway local instances (control,
// pg-a, pg-b) with localpg and creates tenant "acme" on pg-a with a shop
// schema (a dozen tables, foreign keys, sequences, about 15,000 rows);
// the wiring sees only their connection strings, as it would see a
// production fleet's. It needs only Go and the PostgreSQL server package.
// Against servers of your own, the tenant's database must exist on -from;
// the example creates its table daisychain_example_writes in it and
// writes to it, so point it at servers you can throw away.
//
// With -revert, once the application has written to the target for a
// while, it reverts the move (Mover.Revert: the reverse stream carried
// those writes back to the source), and checks every write on the source.
//
// It exits 1 if the move (or the revert) rolled back, a write is missing,
// the application got an error, or the application waited longer than the
// window budget.
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
	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleet"
)

// options are the command line.
type options struct {
	Control   string
	Instances map[string]string
	Tenant    string
	Database  string
	From, To  string
	Writers   int
	Revert    bool
	JSON      bool
	// QuietSpell is the Mover's (cutover.Config.QuietSpell); 0: the
	// library's.
	QuietSpell time.Duration
}

// instanceFlags collects -instance id=URL.
type instanceFlags map[string]string

func (f instanceFlags) String() string { return fmt.Sprint(len(f), " instances") }
func (f instanceFlags) Set(v string) error {
	id, conn, ok := strings.Cut(v, "=")
	if !ok || id == "" || conn == "" {
		return errors.New("want -instance id=connection-string")
	}
	f[id] = conn
	return nil
}

func main() {
	o := options{Instances: instanceFlags{}}
	flag.StringVar(&o.Control, "control", "", "control database connection string (default: start local throwaway instances)")
	flag.Var(instanceFlags(o.Instances), "instance", "id=admin-connection-string of a tenant instance (repeat)")
	flag.StringVar(&o.Tenant, "tenant", "acme", "tenant ID")
	flag.StringVar(&o.Database, "database", "acme", "the tenant's database name")
	flag.StringVar(&o.From, "from", "pg-a", "instance the tenant is on")
	flag.StringVar(&o.To, "to", "pg-b", "instance to move it to")
	flag.IntVar(&o.Writers, "writers", 4, "application connections writing without pause")
	flag.BoolVar(&o.Revert, "revert", false, "after the move, write to the target, then revert the move")
	flag.BoolVar(&o.JSON, "json", false, "print one JSON object")
	flag.DurationVar(&o.QuietSpell, "quiet-spell", 0, "the window's quiet spell (cutover.Config.QuietSpell; 0: the library's): raise it on a starved machine")
	flag.Parse()
	log.SetFlags(0)

	ctx := context.Background()
	if err := o.check(); err != nil {
		log.Fatalf("quickstart: %v", err)
	}
	if o.Control == "" {
		stop, err := startLocal(ctx, &o)
		if err != nil {
			log.Fatalf("quickstart: %v", err)
		}
		defer stop()
	}
	res, err := run(ctx, os.Stdout, o)
	if err != nil {
		log.Printf("quickstart: %v", err)
		os.Exit(1)
	}
	if problems := res.problems(); len(problems) > 0 {
		log.Printf("quickstart: %s", strings.Join(problems, "; "))
		os.Exit(1)
	}
}

// check refuses a command line that names only half of a fleet.
func (o options) check() error {
	switch {
	case o.Control == "" && len(o.Instances) > 0:
		return errors.New("-instance needs -control: give the control database too, or neither to start local instances")
	case o.Control != "" && (o.Instances[o.From] == "" || o.Instances[o.To] == ""):
		return fmt.Errorf("-control needs -instance %s=URL and -instance %s=URL (the -from and -to instances)", o.From, o.To)
	case o.From == o.To:
		return fmt.Errorf("-from and -to are both %q: name two instances", o.From)
	case o.Writers < 1:
		return fmt.Errorf("-writers is %d: at least 1", o.Writers)
	}
	return nil
}

// result is what the application and the library saw.
type result struct {
	Tenant             string  `json:"tenant"`
	From               string  `json:"from"`
	To                 string  `json:"to"`
	Move               string  `json:"move"`
	WindowMS           float64 `json:"window_ms"`
	LibraryWindowMS    float64 `json:"library_window_ms"`
	WindowBudgetMS     float64 `json:"window_budget_ms"`
	AcknowledgedWrites int64   `json:"acknowledged_writes"`
	AppErrors          int64   `json:"app_errors"`
	FirstAppError      string  `json:"first_app_error,omitempty"`
	MissingWrites      int64   `json:"missing_writes"`
	RolledBack         bool    `json:"rolled_back"`
	RollbackReason     string  `json:"rollback_reason,omitempty"`
	// With -revert: the revert's window, as the application saw it (its
	// longest wait during the revert; WindowMS is then the move's) and
	// as the library measured it, and its outcome. MissingWrites counts
	// the writes acknowledged before and after either switch that are
	// not on the source at the end.
	Revert *revertResult `json:"revert,omitempty"`
}

// revertResult is what -revert adds.
type revertResult struct {
	Move            string  `json:"move"`
	WindowMS        float64 `json:"window_ms"`
	LibraryWindowMS float64 `json:"library_window_ms"`
	RolledBack      bool    `json:"rolled_back"`
	RollbackReason  string  `json:"rollback_reason,omitempty"`
}

// problems says what makes the run a failure; none means it succeeded.
func (r result) problems() []string {
	var out []string
	if r.RolledBack {
		out = append(out, "the move rolled back: "+r.RollbackReason)
	}
	if r.MissingWrites > 0 {
		out = append(out, fmt.Sprintf("%d acknowledged writes missing", r.MissingWrites))
	}
	if r.AppErrors > 0 {
		out = append(out, fmt.Sprintf("the application got %d errors, the first: %s", r.AppErrors, r.FirstAppError))
	}
	if r.WindowMS > r.WindowBudgetMS {
		out = append(out, fmt.Sprintf("the application waited %.0f ms, over the %.0f ms window budget", r.WindowMS, r.WindowBudgetMS))
	}
	if rv := r.Revert; rv != nil {
		if rv.RolledBack {
			out = append(out, "the revert rolled back: "+rv.RollbackReason)
		}
		if rv.WindowMS > r.WindowBudgetMS {
			out = append(out, fmt.Sprintf("the application waited %.0f ms during the revert, over the %.0f ms window budget", rv.WindowMS, r.WindowBudgetMS))
		}
	}
	return out
}

func run(ctx context.Context, out io.Writer, o options) (result, error) {
	say := func(format string, args ...any) {
		if !o.JSON {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	h, err := host.Open(ctx, host.Config{Control: o.Control, Instances: o.Instances, QuietSpell: o.QuietSpell})
	if err != nil {
		return result{}, err
	}
	defer h.Close()

	if err := h.Catalog.AddTenant(ctx, fleet.Tenant{ID: o.Tenant, Database: o.Database, Instance: o.From}); err != nil &&
		!errors.Is(err, fleet.ErrTenantExists) {
		return result{}, err
	}
	conn, err := h.Router.Acquire(ctx, o.Tenant)
	if err != nil {
		return result{}, err
	}
	_, err = conn.Exec(ctx, host.WritesTable)
	conn.Release()
	if err != nil {
		return result{}, fmt.Errorf("quickstart: create the application's table: %w", err)
	}

	say("application: %d connections writing to %s through the Router", o.Writers, o.Tenant)
	app := host.StartWriters(h.Router, o.Tenant, o.Writers, 0)
	time.Sleep(300 * time.Millisecond) // let the pools warm up before measuring gaps
	app.ResetGap()
	say("moving %s from %s to %s:", o.Tenant, o.From, o.To)
	events, unsubscribe := h.Mover.Subscribe(cutover.EventStepFinished)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for e := range events {
			status := "ok"
			if e.Err != nil {
				status = "failed: " + e.Err.Error()
			}
			say("  %-15s %8s  %s", e.Step, e.Elapsed.Round(100*time.Microsecond), status)
		}
	}()
	rep, moveErr := h.Mover.Move(ctx, cutover.Request{Tenant: o.Tenant, Target: o.To})
	time.Sleep(300 * time.Millisecond) // writes after the switch, on the target
	var rev *cutover.Report
	var revertErr error
	var moveGap time.Duration
	if o.Revert && moveErr == nil {
		moveGap = app.ResetGap()
		say("reverting the move, %s back to %s:", o.Tenant, o.From)
		rev, revertErr = h.Mover.Revert(ctx, rep.Move)
		time.Sleep(300 * time.Millisecond) // writes after the revert, on the source
	}
	unsubscribe()
	<-printed
	seen := app.Stop()
	if rep == nil {
		return result{}, moveErr
	}
	if rev == nil && revertErr != nil {
		return result{}, revertErr
	}

	// Every acknowledged write must be where the tenant lives now.
	where, err := h.Catalog.Locate(ctx, o.Tenant)
	if err != nil {
		return result{}, err
	}
	missing, err := seen.Missing(ctx, h.Catalog, o.Tenant)
	if err != nil {
		return result{}, err
	}
	res := result{
		Tenant: o.Tenant, From: o.From, To: o.To, Move: rep.Move,
		WindowMS: ms(seen.MaxGap), LibraryWindowMS: ms(rep.Window), WindowBudgetMS: ms(rep.WindowBudget),
		AcknowledgedWrites: seen.Acknowledged(), AppErrors: seen.Errors, MissingWrites: missing,
		RolledBack: rep.RolledBack, RollbackReason: rep.RollbackReason,
	}
	if seen.FirstErr != nil {
		res.FirstAppError = seen.FirstErr.Error()
	}
	if rev != nil {
		res.Revert = &revertResult{Move: rev.Move, WindowMS: ms(seen.MaxGap), LibraryWindowMS: ms(rev.Window),
			RolledBack: rev.RolledBack, RollbackReason: rev.RollbackReason}
		res.WindowMS = ms(moveGap)
	}
	if o.JSON {
		if err := json.NewEncoder(out).Encode(res); err != nil {
			return res, err
		}
	} else {
		outcome := "moved to " + o.To
		if rep.RolledBack {
			outcome = "rolled back, still on " + o.From + ": " + rep.RollbackReason
		}
		say("%s: %s", o.Tenant, outcome)
		say("window as the library measured it: %.0f ms (budget %s), fences: %s, verified: %s, %d bytes copied, total %s",
			res.LibraryWindowMS, rep.WindowBudget, strings.Join(rep.Fences, " + "), rep.Verified, rep.BytesCopied,
			rep.Finished.Sub(rep.Started).Round(time.Millisecond))
		if e := rep.Estimate; e != nil {
			say("estimated before it ran: %s (%s to %s), window %s; basis: %s", e.Total.Round(time.Millisecond),
				e.Low.Round(time.Millisecond), e.High.Round(time.Millisecond), e.Window.Round(time.Millisecond), e.Basis)
		}
		if rv := res.Revert; rv != nil {
			outcome := "reverted to " + o.From
			if rv.RolledBack {
				outcome = "revert rolled back, still on " + o.To + ": " + rv.RollbackReason
			}
			say("%s: %s; revert window as the library measured it: %.0f ms, as the application saw it: %.0f ms",
				o.Tenant, outcome, rv.LibraryWindowMS, rv.WindowMS)
		}
		say("application saw: %d acknowledged writes, %d errors, longest wait %.0f ms; %d missing on %s",
			res.AcknowledgedWrites, res.AppErrors, res.WindowMS, res.MissingWrites, where.Instance)
	}
	for _, err := range []error{moveErr, revertErr} {
		if err != nil && !errors.Is(err, cutover.ErrRolledBack) {
			return res, err
		}
	}
	return res, nil
}

// startLocal starts throwaway instances, creates the tenant's database
// with the shop schema on o.From, and fills o with their connection
// strings, as a user's configuration would.
func startLocal(ctx context.Context, o *options) (stop func(), err error) {
	l, err := host.StartLocal(ctx, o.From, o.To)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	src := l.Servers[o.From]
	if err := src.CreateDatabase(ctx, o.Database); err != nil {
		return nil, err
	}
	tenant, err := src.Connect(ctx, o.Database)
	if err != nil {
		return nil, err
	}
	defer tenant.Close(ctx)
	if _, err := tenant.Exec(ctx, shopSchema); err != nil {
		return nil, fmt.Errorf("the tenant's shop schema: %w", err)
	}
	o.Control, o.Instances = l.Control, l.Instances
	return l.Close, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
