package cutover

import (
	"context"
	"fmt"
	"strings"

	"github.com/daisychain-db/daisychain/fleet"
)

// preflight is the step: every problem at once, as one error.
func (r *run) preflight(ctx context.Context) (any, error) {
	problems := r.preflightProblems(ctx)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %d problem(s):\n  - %s", ErrPreflight, len(problems), strings.Join(problems, "\n  - "))
	}
	return map[string]int64{"route_epoch": r.route.epoch}, nil
}

// preflightProblems checks, read-only, everything the move needs: the
// route, the source database, the target's capacity, and the stream's
// own preflight.
func (r *run) preflightProblems(ctx context.Context) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	route, err := r.m.cfg.Routes.Resolve(ctx, r.p.Tenant)
	switch {
	case err != nil:
		add("route: %v", err)
	case route.Instance != r.p.Source:
		add("route: tenant %q is routed to %q but the catalog has it on %q: publish a route to %q first, or fix the catalog",
			r.p.Tenant, route.Instance, r.p.Source, r.p.Source)
	case route.Paused:
		add("route: tenant %q's route is paused (epoch %d): another move may be under way; Resume it or publish an unpaused route",
			r.p.Tenant, route.Epoch)
	}
	r.route.epoch = max(r.route.epoch, route.Epoch)

	if err := checkSourceDatabase(ctx, r.src, r.p.Database); err != nil {
		add("%v", err)
	}
	if err := r.checkCapacity(ctx); err != nil {
		add("%v", err)
	}
	report, err := r.m.cfg.Provider.Preflight(ctx, r.spec())
	if err != nil {
		add("stream: %v", err)
	} else {
		for _, p := range report.Problems {
			add("stream: %s", p)
		}
	}
	return problems
}

// checkSourceDatabase: the database fence must find the database open to
// connections (so releasing it restores exactly that), and prepared
// transactions would be left behind on the source by a move.
func checkSourceDatabase(ctx context.Context, src fleet.Instance, database string) error {
	conn, err := connectAdmin(ctx, src, database)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var allow, exists bool
	var prepared int
	err = conn.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_and(datallowconn), false),
		(SELECT count(*) FROM pg_prepared_xacts WHERE database = $1)
		FROM pg_database WHERE datname = $1`, database).Scan(&exists, &allow, &prepared)
	switch {
	case err != nil:
		return fmt.Errorf("source database %q: %w", database, err)
	case !exists:
		return fmt.Errorf("source database %q does not exist on %s: fix the catalog", database, src)
	case !allow:
		return fmt.Errorf("source database %q does not allow connections (is it fenced by an earlier move? Resume that move): "+
			"ALTER DATABASE ... ALLOW_CONNECTIONS true if it should serve", database)
	case prepared > 0:
		return fmt.Errorf("source database %q has %d prepared transaction(s): COMMIT PREPARED or ROLLBACK PREPARED them first",
			database, prepared)
	}
	return nil
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
