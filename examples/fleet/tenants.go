package main

import (
	"context"
	"fmt"

	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleet"
)

// tenantSchema is each tenant's: small, so that the run measures the
// moves' fixed costs (stream set-up, window, verification, retire) more
// than copying.
const tenantSchema = `CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);
	INSERT INTO accounts (name) SELECT 'account ' || g FROM generate_series(1, 200) g;`

// addTenants creates n tenants on the instance, each a database with its
// schema and the application's table, and records them in the catalog.
func addTenants(ctx context.Context, l *host.Local, h *host.Host, instance string, n int) ([]string, error) {
	inst := l.Servers[instance]
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-t%03d", instance, i)
		if err := inst.CreateDatabase(ctx, ids[i]); err != nil {
			return nil, err
		}
		conn, err := inst.Connect(ctx, ids[i])
		if err != nil {
			return nil, err
		}
		_, err = conn.Exec(ctx, host.WritesTable+";"+tenantSchema)
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("schema of %s: %w", ids[i], err)
		}
		if err := h.Catalog.AddTenant(ctx, fleet.Tenant{ID: ids[i], Database: ids[i], Instance: instance}); err != nil {
			return nil, err
		}
	}
	return ids, nil
}
