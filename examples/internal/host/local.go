package host

import (
	"context"

	"github.com/daisychain-db/daisychain/localpg"
)

// Local is a fleet of throwaway localpg instances for the examples: a
// control instance (database "daisychain") and the named tenant
// instances, which a Host sees only by their connection strings.
type Local struct {
	// Control is the control database's connection string.
	Control string
	// Instances maps each tenant instance's name to its admin
	// connection string, as a host's configuration would.
	Instances map[string]string
	// Servers are the instances themselves, to create tenant databases.
	Servers map[string]*localpg.Instance
}

// StartLocal starts the control instance and the named ones, each with a
// password of its own. On error nothing is left running. Close it.
func StartLocal(ctx context.Context, names ...string) (_ *Local, err error) {
	l := &Local{Instances: map[string]string{}, Servers: map[string]*localpg.Instance{}}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, name := range append([]string{"control"}, names...) {
		inst, err := localpg.Start(ctx, &localpg.Config{Name: name, Password: "pw-" + name + "-secret"})
		if err != nil {
			return nil, err
		}
		l.Servers[name] = inst
		if name != "control" {
			l.Instances[name] = inst.ConnString("postgres")
		}
	}
	if err := l.Servers["control"].CreateDatabase(ctx, "daisychain"); err != nil {
		return nil, err
	}
	l.Control = l.Servers["control"].ConnString("daisychain")
	return l, nil
}

// Close stops and removes every instance.
func (l *Local) Close() {
	for _, inst := range l.Servers {
		_ = inst.Close()
	}
}
