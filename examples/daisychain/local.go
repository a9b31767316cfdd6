package main

import (
	"context"
	"fmt"

	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica/physical"
)

// addTenant creates the tenant's database on the instance with its
// schema and the application's table, and records it in the catalog.
func addTenant(ctx context.Context, l *host.Local, h *host.Host, id, instance, schema string) error {
	inst := l.Servers[instance]
	if err := inst.CreateDatabase(ctx, id); err != nil {
		return err
	}
	conn, err := inst.Connect(ctx, id)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, host.WritesTable+";"+schema); err != nil {
		return fmt.Errorf("schema of %s: %w", id, err)
	}
	return h.Catalog.AddTenant(ctx, fleet.Tenant{ID: id, Database: id, Instance: instance})
}

// closeReplicas stops the local replicas the converter started. Once
// promoted, a replica is the converted instance and its server is this
// process's child; the example stops them at exit (in production the
// converted instance is a server that stays).
func closeReplicas(c *physical.Converter) {
	for _, cv := range c.Conversions() {
		if inst := cv.LocalInstance(); inst != nil {
			_ = inst.Close()
		}
	}
}
