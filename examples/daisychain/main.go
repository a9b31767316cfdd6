// Command daisychain runs the daisy chain on throwaway local PostgreSQL
// instances while an application writes to every tenant: each instance
// is drained under a file-count threshold onto a spare (and the
// instances already converted), converted onto a streaming replica of
// itself in one window for all its remaining tenants, and refilled from
// the spare.
//
//	go run ./examples/daisychain
//	go run ./examples/daisychain -json
//	go run ./examples/daisychain -dry-run
//
// It starts five localpg instances (control, pg-1, pg-2, pg-3 and the
// spare pg-s) and 30 tenants of varied sizes, and needs only Go and the
// PostgreSQL server package. The library is wired as a host wires it,
// from the instances' connection strings (package examples/internal/host,
// shared with the quickstart), with replica/physical's local standbys as
// the converter.
//
// With -dry-run it moves nothing: it rehearses three tenants of different
// sizes onto the spare (cutover.Mover.Rehearse), then prints the chain's
// dry run, every stage's moves and conversions estimated from those
// rehearsals, with their ranges and what they rest on.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"time"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica/physical"
)

// summary is the -json output. Windows of tenant moves and of
// conversions are reported apart: a conversion holds every tenant of its
// instance in one window.
type summary struct {
	TenantsMoved       int `json:"tenants_moved"`
	InstancesConverted int `json:"instances_converted"`
	// WindowP50MS and WindowMaxMS are the tenant moves' windows.
	WindowP50MS float64 `json:"window_p50_ms"`
	WindowMaxMS float64 `json:"window_max_ms"`
	// Conversions lists each conversion's window and tenants.
	Conversions        []conversion `json:"conversions"`
	AppWindowMaxMS     float64      `json:"app_window_max_ms"`
	AppErrors          int64        `json:"app_errors"`
	AcknowledgedWrites int64        `json:"acknowledged_writes"`
	MissingWrites      int64        `json:"missing_writes"`
	SpareTenantsAtEnd  int          `json:"spare_tenants_at_end"`
	TotalMS            float64      `json:"total_ms"`
	// DryRun is what -dry-run rehearsed and planned.
	DryRun *dryRunReport `json:"dry_run,omitempty"`
}

// conversion is one instance's conversion as the library measured it.
type conversion struct {
	Instance    string  `json:"instance"`
	NewInstance string  `json:"new_instance"`
	Tenants     int     `json:"tenants"`
	WindowMS    float64 `json:"window_ms"`
	RolledBack  bool    `json:"rolled_back"`
}

const (
	tenantsPerInstance = 10
	fileThreshold      = 1600 // each tenant database holds about 300 relation files
)

// options are the command's flags.
type options struct {
	json bool
	// dryRun rehearses a sample and prints the chain's dry run.
	dryRun bool
	// quietSpell is the Mover's (cutover.Config.QuietSpell); 0: the
	// library's.
	quietSpell time.Duration
}

func main() {
	var o options
	flag.BoolVar(&o.json, "json", false, "print one JSON object instead of the readable report")
	flag.BoolVar(&o.dryRun, "dry-run", false, "move nothing: rehearse 3 tenants onto the spare, then print the chain's plan with estimates")
	flag.DurationVar(&o.quietSpell, "quiet-spell", 0, "the window's quiet spell (cutover.Config.QuietSpell; 0: the library's): raise it on a starved machine")
	flag.Parse()
	if o.quietSpell < 0 {
		log.Fatalf("daisychain: -quiet-spell %s: give 0 (the library's) or more", o.quietSpell)
	}
	log.SetFlags(0)
	s, err := run(context.Background(), os.Stdout, o)
	if err != nil {
		log.Fatalf("daisychain: %v", err)
	}
	if s.AppErrors != 0 || s.MissingWrites != 0 || (o.dryRun && s.TenantsMoved != 0) {
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, o options) (summary, error) {
	asJSON := o.json
	start := time.Now()
	say := func(format string, args ...any) {
		if !asJSON {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	chain := []string{"pg-1", "pg-2", "pg-3"}
	say("starting local PostgreSQL instances: control, %v and the spare pg-s ...", chain)
	local, err := host.StartLocal(ctx, append(slices.Clone(chain), "pg-s")...)
	if err != nil {
		return summary{}, err
	}
	defer local.Close()
	replicas := &physical.Converter{
		// The replica's roles and passwords are its source's; a password
		// in its config makes localpg authenticate TCP with SCRAM.
		Replica: localpg.Config{Name: "converted", Password: "(the source's)"},
	}
	defer closeReplicas(replicas)
	h, err := host.Open(ctx, host.Config{
		Control: local.Control, Instances: local.Instances,
		Limits:    fleet.Limits{MaxFiles: 4000, MaxTenants: 20},
		Converter: replicas, WindowBudget: 30 * time.Second, QuietSpell: o.quietSpell,
	})
	if err != nil {
		return summary{}, err
	}
	defer h.Close()

	say("creating %d tenants of varied sizes, and an application writing to each through the Router ...",
		tenantsPerInstance*len(chain))
	var tenants []string
	var writers []*host.Writers
	for i, inst := range chain {
		for j := range tenantsPerInstance {
			id := fmt.Sprintf("tenant-%02d", i*tenantsPerInstance+j)
			n := 200 * (1 + (i*tenantsPerInstance+j)%7) * (1 + j%3)
			schema := fmt.Sprintf(`CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);
				CREATE TABLE events (id bigserial PRIMARY KEY, account_id int REFERENCES accounts, body text);
				CREATE INDEX events_account ON events (account_id);
				INSERT INTO accounts (name) SELECT 'a' || g FROM generate_series(1, 50) g;
				INSERT INTO events (account_id, body) SELECT 1 + g %% 50, repeat('e', 100) FROM generate_series(1, %d) g;`, n)
			if err := addTenant(ctx, local, h, id, inst, schema); err != nil {
				return summary{}, err
			}
			tenants = append(tenants, id)
			writers = append(writers, host.StartWriters(h.Router, id, 1, 20*time.Millisecond))
		}
	}
	defer func() {
		for _, w := range writers {
			w.Stop()
		}
	}()

	runner, err := drain.New(&drain.Config{Catalog: h.Catalog, Mover: h.Mover, Journal: h.Journal})
	if err != nil {
		return summary{}, err
	}
	req := drain.ChainRequest{Instances: chain, Spares: []string{"pg-s"}, Threshold: drain.Threshold{MaxFiles: fileThreshold}}
	if o.dryRun {
		s, err := dryRun(ctx, h, runner, req, say)
		if err == nil && asJSON {
			err = json.NewEncoder(out).Encode(s)
		}
		return s, err
	}
	var windows []time.Duration // of the tenant moves
	moveEvents, stopMoves := runner.Subscribe(drain.EventMoveFinished)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range moveEvents {
			status := "ok"
			if e.Err != nil {
				status = "failed: " + e.Err.Error()
			}
			if e.Report != nil && e.Err == nil {
				windows = append(windows, e.Report.Window)
			}
			say("  moved %-9s %-6s -> %-6s %s (%d/%d)", e.Move.Tenant, e.Move.From, e.Move.To, status, e.Done+e.Failed, e.Total)
		}
	}()
	for _, w := range writers {
		w.ResetGap()
	}
	say("running the chain over %v with spare pg-s, threshold %d files per instance before conversion:", chain, fileThreshold)
	res, chainErr := runner.Chain(ctx, req)
	stopMoves()
	<-done
	time.Sleep(200 * time.Millisecond)

	var s summary
	seen := make([]host.Seen, len(writers))
	for i, w := range writers {
		seen[i] = w.Stop()
		s.AcknowledgedWrites += seen[i].Acknowledged()
		s.AppErrors += seen[i].Errors
		s.AppWindowMaxMS = max(s.AppWindowMaxMS, ms(seen[i].MaxGap))
	}
	if res != nil {
		for _, st := range res.Stages {
			if st.Drain != nil {
				s.TenantsMoved += len(st.Drain.Moved)
			}
			if st.Refill != nil {
				s.TenantsMoved += len(st.Refill.Moved)
			}
			if c := st.Convert; c != nil {
				if !c.RolledBack {
					s.InstancesConverted++
				}
				s.Conversions = append(s.Conversions, conversion{Instance: c.Source, NewInstance: c.Target,
					Tenants: c.Tenants, WindowMS: ms(c.Window), RolledBack: c.RolledBack})
			}
		}
	}
	for i, id := range tenants {
		missing, err := seen[i].Missing(ctx, h.Catalog, id)
		if err != nil {
			return s, err
		}
		s.MissingWrites += missing
	}
	if on, err := h.Catalog.Tenants(ctx, "pg-s"); err == nil {
		s.SpareTenantsAtEnd = len(on)
	}
	slices.Sort(windows)
	if len(windows) > 0 {
		s.WindowP50MS = ms(windows[len(windows)/2])
		s.WindowMaxMS = ms(windows[len(windows)-1])
	}
	s.TotalMS = ms(time.Since(start))
	if asJSON {
		if err := json.NewEncoder(out).Encode(s); err != nil {
			return s, err
		}
	} else {
		if res != nil {
			say("\n%s", res)
		}
		say("%d tenant moves; their windows as the library measured them: p50 %.0f ms, max %.0f ms",
			s.TenantsMoved, s.WindowP50MS, s.WindowMaxMS)
		for _, c := range s.Conversions {
			say("conversion of %s onto %s: %d tenants in one window of %.0f ms", c.Instance, c.NewInstance, c.Tenants, c.WindowMS)
		}
		say("application: %d acknowledged writes, %d errors, longest pause of one tenant's writes %.0f ms; %d writes missing",
			s.AcknowledgedWrites, s.AppErrors, s.AppWindowMaxMS, s.MissingWrites)
		say("spare pg-s holds %d tenants at the end; done in %s", s.SpareTenantsAtEnd, time.Since(start).Round(time.Second))
	}
	return s, chainErr
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
