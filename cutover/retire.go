package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrNotRetirable: the move is not done (or its tenant is not where the
// move put it), so its source copy is still the way back and is kept.
var ErrNotRetirable = errors.New("cutover: move cannot be retired")

// Retire ends a done move's rollback period: it drops the tenant's
// database on the source, which the move left fenced and intact, freeing
// its files and bytes there. It refuses, changing nothing, unless the
// move is done and both the catalog and the published route have the
// tenant on the move's target. Retiring a retired move does nothing.
func (m *Mover) Retire(ctx context.Context, moveID string) error {
	entries, err := m.cfg.Journal.Entries(ctx, moveID)
	if err != nil {
		return err
	}
	switch last := entries[len(entries)-1].Step; last {
	case StepRetire:
		return nil
	case StepDone:
	default:
		return fmt.Errorf("%w: move %q ends with %s, not %s", ErrNotRetirable, moveID, last, StepDone)
	}
	var p plan
	for _, e := range entries {
		if e.Step == StepPlan && e.Status == StatusFinished {
			if err := json.Unmarshal(e.Detail, &p); err != nil {
				return fmt.Errorf("cutover: retire %q: the journaled plan is unreadable: %w", moveID, err)
			}
		}
	}
	tenant, err := m.cfg.Catalog.Locate(ctx, p.Tenant)
	if err != nil {
		return fmt.Errorf("cutover: retire %q: %w", moveID, err)
	}
	if tenant.Instance != p.Target {
		return fmt.Errorf("%w: the catalog has tenant %q on %q, not on the move's target %q",
			ErrNotRetirable, p.Tenant, tenant.Instance, p.Target)
	}
	route, err := m.cfg.Routes.Resolve(ctx, p.Tenant)
	if err != nil {
		return fmt.Errorf("cutover: retire %q: %w", moveID, err)
	}
	if route.Instance != p.Target {
		return fmt.Errorf("%w: tenant %q is routed to %q, not to the move's target %q",
			ErrNotRetirable, p.Tenant, route.Instance, p.Target)
	}
	src, err := m.cfg.Catalog.Instance(ctx, p.Source)
	if err != nil {
		return fmt.Errorf("cutover: retire %q: %w", moveID, err)
	}
	r := &stepper{m: m, move: moveID, subject: p.Tenant, rep: &Report{}}
	return r.step(ctx, StepRetire, func(ctx context.Context) (any, error) {
		conn, err := connectAdmin(ctx, src, p.Database)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		// FORCE ends what the fence let live (replication sessions).
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{p.Database}.Sanitize()+" WITH (FORCE)")
		return map[string]string{"dropped": p.Database, "on": p.Source}, err
	})
}
