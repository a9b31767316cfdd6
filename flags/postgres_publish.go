package flags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// notifyChunkBytes bounds the routes of one PublishMany notification, as
// estimated by the statement: a chunk may overshoot it by one route, at
// most about 2,600 bytes with every field at its longest (Route.Validate)
// and escaped, so a payload stays under PostgreSQL's 8,000.
const notifyChunkBytes = 5000

// Publish implements Publisher: one statement inserts or updates the
// tenant's row only if the epoch is greater, and notifies listeners in
// the same transaction. An epoch not greater than the stored one is
// ErrStaleEpoch. With PostgresConfig.Catalog, a route the catalog does
// not back is refused and nothing is written. The route is also applied
// at once to this provider's memory, if it holds the tenant.
func (p *PostgresProvider) Publish(ctx context.Context, tenantID string, r Route) error {
	if err := checkPublish(ctx, p.catalog, tenantID, r); err != nil {
		return err
	}
	routeJSON, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("flags: encode route: %w", err)
	}
	var seq int64
	err = p.pool.QueryRow(ctx, `WITH up AS (
		INSERT INTO `+p.table+` AS cur (tenant, route, epoch, updated_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (tenant) DO UPDATE
			SET route = excluded.route, epoch = excluded.epoch, updated_at = excluded.updated_at
			WHERE cur.epoch < excluded.epoch
		RETURNING tenant, route, seq)
	SELECT seq, pg_notify($4, json_build_object('tenant', tenant, 'route', route, 'seq', seq)::text) FROM up`,
		tenantID, routeJSON, r.Epoch, p.channel).Scan(&seq, nil)
	if errors.Is(err, pgx.ErrNoRows) {
		var held int64
		if err := p.pool.QueryRow(ctx, "SELECT epoch FROM "+p.table+" WHERE tenant = $1", tenantID).Scan(&held); err != nil {
			return fmt.Errorf("%w: tenant %q, refused epoch %d (reading the current one: %v)", ErrStaleEpoch, tenantID, r.Epoch, err)
		}
		return staleEpoch(tenantID, held, r.Epoch)
	}
	if err != nil {
		return fmt.Errorf("flags: publish route of tenant %q: %w", tenantID, err)
	}
	p.sawSeq(seq)
	st := stored{route: r, seq: seq, found: true}
	if p.cache.apply(tenantID, st) {
		p.routeChanged(tenantID, st)
	}
	return nil
}

// PublishMany implements BatchPublisher: one transaction writes every
// route whose epoch is greater than its tenant's and notifies listeners
// in payloads under PostgreSQL's 8,000-byte limit (about 5 KB), each
// naming its tenants and their routes (a thousand routes: about 25 to 70
// notifications, with the tenant IDs' length); if any epoch was
// not greater, it is rolled back, nothing is announced, and the error is
// a *StaleEpochsError naming every tenant at fault. Three round trips,
// whatever the number of routes. Readers of daisychain versions without
// PublishMany ignore its notifications (until their listener
// reconnects): upgrade readers before publishers use it.
func (p *PostgresProvider) PublishMany(ctx context.Context, routes []TenantRoute) (err error) {
	if len(routes) == 0 {
		return nil
	}
	if err := checkPublishMany(ctx, p.catalog, routes); err != nil {
		return err
	}
	tenants := make([]string, len(routes))
	docs := make([][]byte, len(routes))
	epochs := make([]int64, len(routes))
	byTenant := make(map[string]Route, len(routes))
	for i, tr := range routes {
		if docs[i], err = json.Marshal(tr.Route); err != nil {
			return fmt.Errorf("flags: encode the route of tenant %q: %w", tr.Tenant, err)
		}
		tenants[i], epochs[i] = tr.Tenant, tr.Route.Epoch
		byTenant[tr.Tenant] = tr.Route
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("flags: publish %d routes: %w", len(routes), err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreClosedTx(tx.Rollback(context.WithoutCancel(ctx))))
		}
	}()
	// Chunks are cut by a running estimate of each route's size in the
	// payload (its text, the tenant ID twice for escapes, and the keys).
	rows, err := tx.Query(ctx, `WITH up AS (
		INSERT INTO `+p.table+` AS cur (tenant, route, epoch, updated_at)
		SELECT i.tenant, i.route, i.epoch, now() FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) AS i(tenant, route, epoch)
		ON CONFLICT (tenant) DO UPDATE
			SET route = excluded.route, epoch = excluded.epoch, updated_at = excluded.updated_at
			WHERE cur.epoch < excluded.epoch
		RETURNING tenant, route, seq),
	sized AS (
		SELECT tenant, route, seq,
			sum(2 * octet_length(tenant) + octet_length(route::text) + 64) OVER (ORDER BY tenant) AS run
		FROM up)
	SELECT n, tenants, seqs, pg_notify($4, payload) FROM (
		SELECT count(*) AS n, array_agg(tenant ORDER BY tenant) AS tenants, array_agg(seq ORDER BY tenant) AS seqs,
			json_build_object('routes', json_agg(json_build_object('tenant', tenant, 'route', route, 'seq', seq) ORDER BY tenant))::text AS payload
		FROM sized GROUP BY run / $5::bigint) AS chunks`,
		tenants, docs, epochs, p.channel, notifyChunkBytes)
	if err != nil {
		return fmt.Errorf("flags: publish %d routes: %w", len(routes), err)
	}
	var written int64
	var n int64
	var chunkTenants []string
	var chunkSeqs []int64
	seqs := make(map[string]int64, len(routes))
	if _, err = pgx.ForEachRow(rows, []any{&n, &chunkTenants, &chunkSeqs, nil}, func() error {
		written += n
		for i, t := range chunkTenants {
			seqs[t] = chunkSeqs[i]
		}
		return nil
	}); err != nil {
		return fmt.Errorf("flags: publish %d routes: %w", len(routes), err)
	}
	if written != int64(len(routes)) {
		if err = tx.Rollback(ctx); err != nil {
			return fmt.Errorf("flags: publish %d routes: roll back: %w", len(routes), err)
		}
		return p.epochConflicts(ctx, routes)
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("flags: publish %d routes: commit: %w", len(routes), err)
	}
	var changed []string
	for t, seq := range seqs {
		if p.cache.apply(t, stored{route: byTenant[t], seq: seq, found: true}) {
			changed = append(changed, t)
		}
	}
	p.routesChanged(changed)
	return nil
}

// epochConflicts reads the current epochs of routes' tenants after a
// PublishMany that could not write them all, and returns the refusal.
func (p *PostgresProvider) epochConflicts(ctx context.Context, routes []TenantRoute) error {
	tenants := make([]string, len(routes))
	for i, tr := range routes {
		tenants[i] = tr.Tenant
	}
	held := map[string]int64{}
	rows, err := p.pool.Query(ctx, "SELECT tenant, epoch FROM "+p.table+" WHERE tenant = ANY($1)", tenants)
	var tenant string
	var epoch int64
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&tenant, &epoch}, func() error { held[tenant] = epoch; return nil })
	}
	if err != nil {
		return fmt.Errorf("%w: nothing published: some of %d routes were refused (reading the current epochs: %v)",
			ErrStaleEpoch, len(routes), err)
	}
	var conflicts []EpochConflict
	for _, tr := range routes {
		if h, ok := held[tr.Tenant]; ok && h >= tr.Route.Epoch {
			conflicts = append(conflicts, EpochConflict{Tenant: tr.Tenant, Held: h, Refused: tr.Route.Epoch})
		}
	}
	return &StaleEpochsError{Conflicts: sortConflicts(conflicts)}
}

func ignoreClosedTx(err error) error {
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

// Forget implements RouteForgetter: it deletes the tenant's row if its
// route is still the one at epoch, and notifies listeners in the same
// statement; they drop the route, and the next route published for the
// tenant is followed whatever its epoch (see RouteForgetter).
func (p *PostgresProvider) Forget(ctx context.Context, tenantID string, epoch int64) (bool, error) {
	if err := checkForgetArgs(tenantID, epoch); err != nil {
		return false, err
	}
	st, raw, err := p.readRoute(ctx, tenantID)
	if err != nil {
		return false, fmt.Errorf("flags: forget: %w", err)
	}
	cur := st.route
	if !st.found || cur.Epoch != epoch {
		return false, nil
	}
	if err := checkForget(ctx, p.catalog, tenantID, cur); err != nil {
		return false, err
	}
	var seq int64
	err = p.pool.QueryRow(ctx, `WITH gone AS (
		DELETE FROM `+p.table+` WHERE tenant = $1 AND epoch = $2 AND route = $3::jsonb RETURNING tenant)
	SELECT n.seq, pg_notify($4, json_build_object('tenant', tenant, 'forgot', $2::bigint, 'seq', n.seq)::text)
	FROM gone, LATERAL (SELECT nextval($5::regclass) AS seq) AS n`,
		tenantID, epoch, raw, p.channel, p.seqName).Scan(&seq, nil)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // published meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("flags: forget the route of tenant %q: %w", tenantID, err)
	}
	p.sawSeq(seq)
	if st := (stored{seq: seq}); p.cache.apply(tenantID, st) {
		p.routeChanged(tenantID, st)
	}
	return true, nil
}

// Published reads the route stored for the tenant in the control database
// (not this provider's memory, which may trail it): the authoritative
// answer to whether a Publish that was cut off went through.
func (p *PostgresProvider) Published(ctx context.Context, tenantID string) (Route, bool, error) {
	st, _, err := p.readRoute(ctx, tenantID)
	if err != nil {
		return Route{}, false, fmt.Errorf("flags: published route: %w", err)
	}
	return st.route, st.found, nil
}
