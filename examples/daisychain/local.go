package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/physical"
)

// localFleet is the throwaway instances the example runs on: a control
// instance and the tenant instances, which the host sees only by their
// connection strings.
type localFleet struct {
	control   string
	instances map[string]string
	servers   map[string]*localpg.Instance
}

// startLocal starts the control instance and the named ones. On error
// nothing is left running.
func startLocal(ctx context.Context, names []string) (_ *localFleet, err error) {
	l := &localFleet{instances: map[string]string{}, servers: map[string]*localpg.Instance{}}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	for _, name := range append([]string{"control"}, names...) {
		inst, err := localpg.Start(ctx, &localpg.Config{Name: name, Password: "pw-" + name + "-secret"})
		if err != nil {
			return nil, err
		}
		l.servers[name] = inst
		l.instances[name] = inst.ConnString("postgres")
	}
	delete(l.instances, "control")
	if err := l.servers["control"].CreateDatabase(ctx, "daisychain"); err != nil {
		return nil, err
	}
	l.control = l.servers["control"].ConnString("daisychain")
	return l, nil
}

// addTenant creates the tenant's database on the instance with its
// schema and the application's table, and records it in the catalog.
func (l *localFleet) addTenant(ctx context.Context, h *host.Host, id, instance, schema string) error {
	inst := l.servers[instance]
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

func (l *localFleet) close() {
	for _, inst := range l.servers {
		_ = inst.Close()
	}
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
