// Command quickstart shows daisychain on throwaway local PostgreSQL
// instances: it starts a control instance and two tenant instances,
// creates a tenant with a realistic schema, records the fleet in the
// control database's catalog, and measures what each instance holds.
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -json
//
// It needs only Go and the PostgreSQL server package (initdb, postgres);
// localpg finds the binaries.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
)

// report is what the quickstart prints; with -json, as one object.
type report struct {
	Tenant    string                   `json:"tenant"`
	Instances []string                 `json:"instances"`
	Usage     map[string][]fleet.Usage `json:"usage"`
	Located   string                   `json:"located_on"`
	ElapsedMS int64                    `json:"elapsed_ms"`
}

func main() {
	asJSON := flag.Bool("json", false, "print one JSON object instead of text")
	flag.Parse()
	log.SetFlags(0)
	if err := run(context.Background(), os.Stdout, *asJSON); err != nil {
		log.Fatalf("quickstart: %v", err)
	}
}

func run(ctx context.Context, out io.Writer, asJSON bool) error {
	start := time.Now()
	say := func(format string, args ...any) {
		if !asJSON {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}

	say("starting local PostgreSQL instances (control, pg-a, pg-b)...")
	var insts []*localpg.Instance
	defer func() {
		for _, i := range insts {
			i.Close()
		}
	}()
	for _, name := range []string{"control", "pg-a", "pg-b"} {
		inst, err := localpg.Start(ctx, &localpg.Config{Name: name, Password: "quickstart-" + name})
		if err != nil {
			return err
		}
		insts = append(insts, inst)
	}
	control, a, b := insts[0], insts[1], insts[2]

	if err := control.CreateDatabase(ctx, "daisychain"); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, control.ConnString("daisychain"))
	if err != nil {
		return err
	}
	defer pool.Close()
	catalog, err := fleet.NewPostgresCatalog(ctx, pool, &fleet.PostgresCatalogConfig{
		// The catalog never stores passwords; the application supplies them.
		AdminPassword: func(_ context.Context, id string) (string, error) { return "quickstart-" + id, nil },
	})
	if err != nil {
		return err
	}
	for _, inst := range []*localpg.Instance{a, b} {
		if err := catalog.RegisterInstance(ctx, fleet.Instance{
			ID:       inst.Name(),
			Admin:    inst.ConnString("postgres"),
			Endpoint: fleet.Endpoint{Host: localpg.Host, Port: inst.Port()},
			Limits:   fleet.Limits{MaxFiles: 20000, MaxTenants: 100},
		}); err != nil {
			return err
		}
	}

	const tenant = "acme"
	say("creating tenant %q on %s with a shop schema...", tenant, a.Name())
	if err := a.CreateDatabase(ctx, tenant); err != nil {
		return err
	}
	if err := createShop(ctx, a, tenant); err != nil {
		return err
	}
	if err := catalog.AddTenant(ctx, fleet.Tenant{ID: tenant, Database: tenant, Instance: a.Name()}); err != nil {
		return err
	}

	rep := report{Tenant: tenant, Usage: map[string][]fleet.Usage{}}
	registered, err := catalog.Instances(ctx)
	if err != nil {
		return err
	}
	for _, inst := range registered {
		rep.Instances = append(rep.Instances, inst.ID)
		usage, err := fleet.MeasureUsage(ctx, inst, &fleet.UsageOpts{Interval: time.Second})
		if err != nil {
			return err
		}
		rep.Usage[inst.ID] = usage
	}
	located, err := catalog.Locate(ctx, tenant)
	if err != nil {
		return err
	}
	rep.Located = located.Instance
	rep.ElapsedMS = time.Since(start).Milliseconds()

	if asJSON {
		return json.NewEncoder(out).Encode(rep)
	}
	say("\ncatalog: tenant %q lives on %s", tenant, rep.Located)
	for _, id := range rep.Instances {
		say("instance %s:", id)
		if len(rep.Usage[id]) == 0 {
			say("  (no tenant databases)")
		}
		for _, u := range rep.Usage[id] {
			say("  %-10s %6d kB  %4d files  %3d tables  %5.1f tx/s", u.Database, u.Bytes/1024, u.Files, u.Tables, u.TPS)
		}
	}
	say("\ndone in %s", time.Since(start).Round(time.Millisecond))
	return nil
}
