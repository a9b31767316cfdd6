package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
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

// localReplicas is the example's converter: replica/physical's local
// standbys. Once promoted, a replica is the converted instance and its
// server is this process's child; the example stops them at exit (in
// production the converted instance is a server that stays).
type localReplicas struct {
	physical.Converter
	mu      sync.Mutex
	started []*physical.Conversion
}

// Start implements replica.Converter, keeping each conversion to close.
func (r *localReplicas) Start(ctx context.Context, spec replica.ConvertSpec) (replica.Conversion, error) {
	c, err := r.Converter.Start(ctx, spec)
	if pc, ok := c.(*physical.Conversion); ok && err == nil {
		r.mu.Lock()
		r.started = append(r.started, pc)
		r.mu.Unlock()
	}
	return c, err
}

func (r *localReplicas) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.started {
		if inst := c.LocalInstance(); inst != nil {
			_ = inst.Close()
		}
	}
}
