package cutover

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
)

// preflight is the step: every problem at once, as one error.
func (r *run) preflight(ctx context.Context) (any, error) {
	problems := r.preflightProblems(ctx)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %d problem(s):\n  - %s", ErrPreflight, len(problems), strings.Join(problems, "\n  - "))
	}
	r.measureStart(ctx)
	return map[string]int{"tenants": len(r.tenants)}, nil
}

// preflightProblems checks, read-only, everything the run needs: every
// tenant's route, the source databases, and what the copy needs (a
// move's target capacity and stream, a conversion's replica).
func (r *run) preflightProblems(ctx context.Context) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	routes, err := r.m.resolveSet(ctx, r.routeTenants())
	if err != nil {
		add("routes of the %d tenant(s): %v", len(r.tenants), err)
		routes = make([]resolvedRoute, len(r.tenants))
	}
	for i, t := range r.tenants {
		route := routes[i].route
		switch {
		case err != nil:
			// said once above
		case routes[i].err != nil:
			add("route of %q: %v", t.ID, routes[i].err)
		case route.Instance != r.src.ID:
			add("route: tenant %q is routed to %q but the catalog has it on %q: publish a route to %q first, or fix the catalog",
				t.ID, route.Instance, r.src.ID, r.src.ID)
		case route.Paused:
			add("route: tenant %q's route is paused (epoch %d): another move may be under way; Resume it or publish an unpaused route",
				t.ID, route.Epoch)
		}
		r.routes[i].epoch = max(r.routes[i].epoch, route.Epoch)
	}
	for _, p := range checkSourceDatabases(ctx, r.src, r.databases()) {
		add("%s", p)
	}
	return append(problems, r.copy.preflight(ctx)...)
}

// checkSourceDatabases, over one connection: the database fence must find
// each database open to connections (so releasing it restores exactly
// that), and prepared transactions would be left behind on the source.
func checkSourceDatabases(ctx context.Context, src fleet.Instance, dbs []string) []string {
	conn, err := connectAdmin(ctx, src, dbs...)
	if err != nil {
		return []string{err.Error()}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT want.datname, d.datname IS NOT NULL, coalesce(d.datallowconn, false),
		(SELECT count(*) FROM pg_prepared_xacts x WHERE x.database = want.datname)
		FROM unnest($1::text[]) AS want(datname) LEFT JOIN pg_database d USING (datname)
		ORDER BY want.datname`, dbs)
	if err != nil {
		return []string{fmt.Sprintf("source databases: %v", err)}
	}
	var problems []string
	var db string
	var exists, allow bool
	var prepared int
	_, err = pgx.ForEachRow(rows, []any{&db, &exists, &allow, &prepared}, func() error {
		switch {
		case !exists:
			problems = append(problems, fmt.Sprintf("source database %q does not exist on %s: fix the catalog", db, src))
		case !allow:
			problems = append(problems, fmt.Sprintf("source database %q does not allow connections (is it fenced by an earlier move? Resume that move): "+
				"ALTER DATABASE ... ALLOW_CONNECTIONS true if it should serve", db))
		case prepared > 0:
			problems = append(problems, fmt.Sprintf("source database %q has %d prepared transaction(s): COMMIT PREPARED or ROLLBACK PREPARED them first",
				db, prepared))
		}
		return nil
	})
	if err != nil {
		return []string{fmt.Sprintf("source databases: %v", err)}
	}
	return problems
}

// checkCapacity: the target must stay within its Limits with the tenant
// on it. Only when a limit is set is the target measured: every database
// on its disk, fenced copies and databases a move is creating too, through
// one connection (fleet.MeasureInstance); the tenant's database is
// measured on the source only for a file or byte limit.
func (r *run) checkCapacity(ctx context.Context) error {
	lim := r.tgt.Limits
	if lim == (fleet.Limits{}) {
		return nil
	}
	target, err := fleet.MeasureInstance(ctx, r.tgt, &fleet.UsageOpts{Interval: -1})
	if err != nil {
		return fmt.Errorf("capacity: measure the target: %w", err)
	}
	held := target.Held()
	var problems []string
	if lim.MaxTenants > 0 && held.Databases+1 > lim.MaxTenants {
		problems = append(problems, fmt.Sprintf("%d databases, limit %d", held.Databases+1, lim.MaxTenants))
	}
	if lim.MaxBytes > 0 || lim.MaxFiles > 0 {
		tenant, err := fleet.MeasureUsage(ctx, r.src, &fleet.UsageOpts{Databases: []string{r.p.Database}, Interval: -1})
		if err != nil {
			return fmt.Errorf("capacity: measure the tenant: %w", err)
		}
		bytes, files := held.Bytes+tenant[0].Bytes, held.Files+tenant[0].Files
		if lim.MaxBytes > 0 && bytes > lim.MaxBytes {
			problems = append(problems, fmt.Sprintf("%d bytes, limit %d", bytes, lim.MaxBytes))
		}
		if err := fleet.FilesUncountedError(r.tgt, held.FilesUncounted); lim.MaxFiles > 0 && err != nil {
			return fmt.Errorf("capacity: %w", err)
		}
		if lim.MaxFiles > 0 && files > lim.MaxFiles {
			problems = append(problems, fmt.Sprintf("%d files, limit %d", files, lim.MaxFiles))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("capacity: with tenant %q, %s would hold %s: choose another target or raise its Limits",
			r.p.Tenant, r.tgt.ID, strings.Join(problems, ", "))
	}
	return nil
}
