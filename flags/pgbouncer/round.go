package pgbouncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/internal/pgbadmin"
)

// ErrNotApplied: after RELOAD, SHOW DATABASES does not show the entries
// the Follower wrote: PgBouncer does not read Config.File (is it
// %included by pgbouncer.ini?), or refused it (its log says why). The
// databases concerned are not resumed.
var ErrNotApplied = errors.New("pgbouncer: PgBouncer did not take the entries of Config.File after RELOAD")

// reloadCheck bounds how long a round waits for SHOW DATABASES to show
// what RELOAD loaded (RELOAD is synchronous in PgBouncer 1.18; the wait
// is for versions that are not), reading it every reloadPoll.
const (
	reloadCheck = 2 * time.Second
	reloadPoll  = 10 * time.Millisecond
)

// round brings PgBouncer level with the routes: it reads the routes of
// tenants (nil: every tenant), then, in this order, PAUSEs the databases
// whose routes are paused (holding clients comes first), rewrites the
// file and RELOADs if an entry differs, checks that SHOW DATABASES shows
// the new entries, and RESUMEs the databases whose pause is its own and
// whose unpaused route PgBouncer now follows. Whatever fails is in the
// error; the rest is done.
func (f *Follower) round(ctx context.Context, tenants []string) error {
	f.roundMu.Lock()
	defer f.roundMu.Unlock()
	if tenants == nil {
		tenants = f.tenants
	}
	var errs []error
	for _, t := range tenants {
		r, err := f.resolver.Resolve(ctx, t)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Its last route, if any, stays.
			errs = append(errs, fmt.Errorf("pgbouncer: route of tenant %q: %w", t, err))
			continue
		}
		f.routes[t] = r
	}
	want, unread, err := f.wanted()
	errs = append(errs, err)
	if err := f.apply(ctx, want, unread); err != nil {
		f.consoleFailed(ctx, err)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f.emit(&Event{Kind: EventSynced, Tenants: len(tenants)})
	return nil
}

// wanted returns the entries the routes ask for, by PgBouncer database
// name, and whether some tenant's route was never read (then the file
// keeps entries no route names, lest a tenant lose its entry to a
// failed read). Tenants whose entries cannot be written are in the
// error, and left out.
func (f *Follower) wanted() (map[string]entry, bool, error) {
	want := map[string]entry{}
	unread := false
	var errs []error
	for _, t := range f.tenants {
		r, ok := f.routes[t]
		if !ok {
			unread = true
			continue
		}
		name := f.database(t, r)
		if err := checkName(name); err != nil {
			errs = append(errs, fmt.Errorf("pgbouncer: tenant %q: %w", t, err))
			continue
		}
		if prev, dup := want[name]; dup {
			if endpointOf(prev.route) != endpointOf(r) {
				errs = append(errs, fmt.Errorf("pgbouncer: tenants %q and %q share PgBouncer database %q but their routes go to %s and %s: set Config.Database",
					prev.tenant, t, name, prev.route.Endpoint, r.Endpoint))
				continue
			}
			// One entry for both: held while either route is paused.
			r.Paused = r.Paused || prev.route.Paused
		}
		want[name] = entry{tenant: t, route: r}
	}
	return want, unread, errors.Join(errs...)
}

// apply makes PgBouncer's entries and pauses what want says.
func (f *Follower) apply(ctx context.Context, want map[string]entry, unread bool) error {
	conn, err := f.console(ctx)
	if err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	actual, err := showDatabases(ctx, conn)
	if err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	names := slices.Sorted(maps.Keys(want))
	// Hold first: a paused route's database, if PgBouncer has it.
	if err := f.pause(ctx, conn, names, want, actual); err != nil {
		return err
	}

	lines, content, err := readLines(f.file)
	if err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	next := map[string]string{}
	if unread {
		maps.Copy(next, lines)
	}
	for _, name := range names {
		next[name] = renderLine(name, want[name].route, f.options)
	}
	if newContent := render(next); !bytes.Equal(newContent, content) {
		var changed []string
		for name, line := range next {
			if lines[name] != line {
				changed = append(changed, name)
			}
		}
		for name := range lines {
			if _, kept := next[name]; !kept {
				changed = append(changed, name)
			}
		}
		slices.Sort(changed)
		if actual, err = f.reload(ctx, conn, newContent, want); err != nil {
			return err
		}
		for _, name := range changed {
			// Moved while paused: that pause held clients for this
			// move, and ends with it.
			if actual[name].paused {
				f.mine[name] = true
			}
		}
		f.log.Info("pgbouncer follower: entries rewritten and reloaded", "databases", changed)
		f.emit(&Event{Kind: EventReloaded, Databases: changed})
		// A new entry for a paused route is held now it exists.
		if err := f.pause(ctx, conn, names, want, actual); err != nil {
			return err
		}
	}
	return f.resume(ctx, conn, names, want, actual)
}

// pause PAUSEs the databases of names whose routes are paused and which
// PgBouncer has, unpaused. Each PAUSE returns once the database's
// transactions in flight end.
func (f *Follower) pause(ctx context.Context, conn *pgx.Conn, names []string, want map[string]entry, actual map[string]dbState) error {
	var paused []string
	defer func() {
		if len(paused) > 0 {
			f.log.Info("pgbouncer follower: paused", "databases", paused)
			f.emit(&Event{Kind: EventPaused, Databases: paused})
		}
	}()
	for _, name := range names {
		st, ok := actual[name]
		if !want[name].route.Paused || !ok || st.paused {
			continue
		}
		if err := pgbadmin.Command(ctx, conn, "PAUSE", name, "already"); err != nil {
			return fmt.Errorf("pgbouncer: %w", err)
		}
		f.mine[name] = true
		st.paused = true
		actual[name] = st
		paused = append(paused, name)
	}
	return nil
}

// resume RESUMEs the databases of names whose pause is the Follower's,
// whose routes are unpaused, and whose entries PgBouncer shows where the
// route says: never onto the old entry.
func (f *Follower) resume(ctx context.Context, conn *pgx.Conn, names []string, want map[string]entry, actual map[string]dbState) error {
	var resumed []string
	defer func() {
		if len(resumed) > 0 {
			f.log.Info("pgbouncer follower: resumed", "databases", resumed)
			f.emit(&Event{Kind: EventResumed, Databases: resumed})
		}
	}()
	for name := range f.mine {
		if _, ok := want[name]; !ok {
			delete(f.mine, name) // no longer ours to follow
		}
	}
	for _, name := range names {
		e, st := want[name], actual[name]
		if e.route.Paused || !f.mine[name] || st.endpoint != endpointOf(e.route) {
			continue
		}
		if st.paused {
			if err := pgbadmin.Command(ctx, conn, "RESUME", name, "not paused"); err != nil {
				return fmt.Errorf("pgbouncer: %w", err)
			}
			resumed = append(resumed, name)
		}
		delete(f.mine, name)
	}
	return nil
}

// reload writes the file, RELOADs, and waits until SHOW DATABASES shows
// every wanted entry where its route says; it returns what SHOW
// DATABASES shows then.
func (f *Follower) reload(ctx context.Context, conn *pgx.Conn, content []byte, want map[string]entry) (map[string]dbState, error) {
	if err := writeAtomically(f.file, content); err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	if _, err := conn.Exec(ctx, "RELOAD"); err != nil {
		return nil, fmt.Errorf("pgbouncer: RELOAD: %w", err)
	}
	var actual map[string]dbState
	var wrong []string
	check := func() error {
		var err error
		if actual, err = showDatabases(ctx, conn); err != nil {
			return backoff.Permanent(err)
		}
		wrong = wrong[:0]
		for name, e := range want {
			if got := actual[name].endpoint; got != endpointOf(e.route) {
				wrong = append(wrong, fmt.Sprintf("%s shows %q, want %q", name, got, endpointOf(e.route)))
			}
		}
		if len(wrong) > 0 {
			return ErrNotApplied
		}
		return nil
	}
	checkCtx, cancel := context.WithTimeout(ctx, reloadCheck)
	defer cancel()
	err := backoff.Retry(check, backoff.WithContext(backoff.NewConstantBackOff(reloadPoll), checkCtx))
	if errors.Is(err, ErrNotApplied) || (err != nil && checkCtx.Err() != nil && ctx.Err() == nil) {
		slices.Sort(wrong)
		if len(wrong) > 5 {
			wrong = append(wrong[:5], fmt.Sprintf("and %d more", len(wrong)-5))
		}
		return nil, fmt.Errorf("%w (is %s %%included by pgbouncer.ini? PgBouncer's log says whether it refused it): %v", ErrNotApplied, f.file, wrong)
	}
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	return actual, nil
}
