package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/flags/pgbouncer"
)

// PgBouncerAdminEnv names the environment variable that gives PgBouncer's
// admin console when --admin does not.
const PgBouncerAdminEnv = "DAISYCHAIN_PGBOUNCER_ADMIN"

// optionFlags collect --option key=value, repeated.
type optionFlags map[string]string

func (o optionFlags) String() string { return "" }

func (o optionFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("--option %q: write it as key=value, as pool_size=20", v)
	}
	o[k] = val
	return nil
}

func init() {
	register(&command{
		name:    "pgbouncer follow",
		args:    "",
		summary: "keep a PgBouncer's [databases] entries equal to its tenants' routes, until stopped",
		help: `Runs beside a PgBouncer and keeps the entries of the file it owns (--file,
which pgbouncer.ini %includes at its end) equal to the routes of the tenants
it serves: a paused route PAUSEs the tenant's database; a route to a new
endpoint rewrites the file (atomically: one rewrite and one RELOAD for every
route that changed together), checks that PgBouncer shows the new entry,
then RESUMEs. So any client through PgBouncer follows a move. Put
PgBouncerFence in the movers' fences as well, so that a window waits for
PgBouncer's transactions in flight (see package flags/pgbouncer).

The tenants are those of --instance in the catalog when the command starts,
or those --tenants lists. The admin console's connection string comes from
--admin or $` + PgBouncerAdminEnv + ` (its password from PGPASSWORD or .pgpass); the
file holds no password. It runs until Ctrl-C, printing what it changes (one
JSON object per line with --json), and exits 0.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *invocation) error {
			var admin secret
			var file, instance, tenants string
			var resync time.Duration
			options := optionFlags{}
			fs.Var(&admin, "admin", "PgBouncer's admin console connection string `CONN` (database pgbouncer; default $"+PgBouncerAdminEnv+")")
			fs.StringVar(&file, "file", "", "the `PATH` of the [databases] file the command owns, %included by pgbouncer.ini")
			fs.StringVar(&instance, "instance", "", "follow the tenants the catalog has on instance `ID`")
			fs.StringVar(&tenants, "tenants", "", "follow these tenants (`IDs`, comma-separated) instead of --instance's")
			fs.Var(options, "option", "a per-database PgBouncer setting for every entry, `key=value` (repeat it)")
			fs.DurationVar(&resync, "resync", pgbouncer.ResyncIntervalDefault, "read every route again this often, besides the routes' notifications")
			return func(ctx context.Context, inv *invocation) (err error) {
				if len(inv.args) != 0 {
					return usagef("pgbouncer follow takes no arguments, got %q", inv.args)
				}
				if admin.value == "" {
					admin.value = strings.TrimSpace(inv.getenv(PgBouncerAdminEnv))
				}
				if file == "" {
					return usagef("give --file: the path of the [databases] file pgbouncer.ini %%includes, which the command owns")
				}
				if (instance == "") == (tenants == "") {
					return usagef("give --instance or --tenants: the tenants this PgBouncer serves")
				}
				h, err := openControl(ctx, inv.g, inv.stderr)
				if err != nil {
					return err
				}
				defer func() { err = errors.Join(err, h.Close()) }()
				ids := splitList(tenants)
				if instance != "" {
					if _, err := h.catalog.Instance(ctx, instance); err != nil {
						return fmt.Errorf("--instance: %w", err)
					}
					on, err := h.catalog.Tenants(ctx, instance)
					if err != nil {
						return err
					}
					if len(on) == 0 {
						return fmt.Errorf("the catalog has no tenant on instance %q: nothing to follow", instance)
					}
					for _, t := range on {
						ids = append(ids, t.ID)
					}
				}
				resolver, err := h.openRoutes(ctx, inv.g, 0)
				if err != nil {
					return err
				}
				follower, err := pgbouncer.New(&pgbouncer.Config{Resolver: resolver, Admin: admin.value, File: file,
					Tenants: ids, Options: options, ResyncInterval: resync, Logger: h.logger})
				if err != nil {
					// Config errors name Admin, File, Tenants, Options:
					// the flags say the same in the help.
					return usagef("%v", err)
				}
				// The first round says at once what is wrong (PgBouncer out of
				// reach, a file it does not include), rather than a retry log.
				if err := follower.Sync(ctx); err != nil {
					return err
				}
				events, stop := follower.Subscribe()
				defer stop()
				done := make(chan error, 1)
				go func() { done <- follower.Run(ctx) }()
				fmt.Fprintf(inv.stderr, "following the routes of %d tenants into %s; Ctrl-C stops\n", len(ids), file)
				for {
					select {
					case e := <-events:
						printFollowerEvent(inv, e)
					case err := <-done:
						return err
					}
				}
			}
		},
	})
}

// printFollowerEvent prints what the Follower did: a line, or a JSON
// object per line with --json.
func printFollowerEvent(inv *invocation, e *pgbouncer.Event) {
	if e.Kind == pgbouncer.EventSynced {
		return // every round: noise
	}
	if inv.g.json {
		doc := map[string]any{"at": e.At.UTC().Format(time.RFC3339Nano), "event": e.Kind, "databases": e.Databases}
		if e.Err != nil {
			doc["error"] = e.Err.Error()
		}
		b, _ := json.Marshal(doc)
		fmt.Fprintln(inv.stdout, string(b))
		return
	}
	line := fmt.Sprintf("%s %-8s %s", e.At.Format("15:04:05.000"), e.Kind, strings.Join(e.Databases, " "))
	if e.Err != nil {
		line += e.Err.Error()
	}
	fmt.Fprintln(inv.stdout, line)
}
