package cutover

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// replicaCopy is a conversion's copier: a replica of the whole instance
// (Config.Converter), promoted inside the window, its tenant databases
// opened and the new instance registered before the switch.
type replicaCopy struct {
	r    *run
	conv replica.Conversion
	// newInst is the replica as the catalog will have it; set before
	// the window.
	newInst fleet.Instance

	// What a rollback must undo: the replica may exist (touched), it
	// was promoted (then it is no replica any more and stays), it may
	// be in the catalog (registered).
	touched, promoted, registered bool
}

func (c *replicaCopy) spec() replica.ConvertSpec {
	return replica.ConvertSpec{ID: c.r.p.Move, Source: c.r.src.Admin, Logger: c.r.m.cfg.Logger}
}

func (c *replicaCopy) startStep() Step { return StepReplica }

func (c *replicaCopy) start(ctx context.Context) (follower, error) {
	c.touched = true
	conv, err := c.r.m.cfg.Converter.Start(ctx, c.spec())
	if err != nil {
		return nil, err
	}
	c.conv = conv
	return conv, nil
}

func (c *replicaCopy) preflight(ctx context.Context) []string {
	problems := reverseStreamsOn(ctx, c.r.src)
	pf, ok := c.r.m.cfg.Converter.(ConverterPreflighter)
	if !ok {
		return problems
	}
	report, err := pf.Preflight(ctx, c.spec())
	if err != nil {
		return append(problems, "replica: "+err.Error())
	}
	for _, p := range report.Problems {
		problems = append(problems, "replica: "+p.String())
	}
	return problems
}

// ready opens the admin session to the replica that register uses: a
// session opened on a standby writes once it is promoted.
func (c *replicaCopy) ready(ctx context.Context) error {
	c.newInst = fleet.Instance{ID: c.r.p.NewInstance, Admin: c.conv.AdminConnString(),
		Endpoint: c.conv.Endpoint(), Limits: c.r.p.Limits}
	if c.newInst.Admin == "" {
		return fmt.Errorf("the replica of %s has no address yet", c.r.src.ID)
	}
	return c.r.admin.open(ctx, c.newInst, c.r.databases())
}

// spare: a physical replica holds no session in any tenant database, so
// every session there is ended.
func (c *replicaCopy) spare() FenceSparer { return SparePIDs{} }

// leveled: from the promotion on, the old instance's copy stays the way
// back until the switch; the promoted replica is what the switch opens.
func (c *replicaCopy) leveled() []stepDef {
	return []stepDef{
		{step: StepPromote, run: c.promote},
		{step: StepRegister, journal: journalStart, run: c.register},
	}
}

func (c *replicaCopy) promote(ctx context.Context) (any, error) {
	if err := c.conv.Promote(ctx); err != nil {
		return nil, err
	}
	c.promoted = true
	return nil, nil
}

// register opens the tenant databases of the promoted replica (the
// database fence's ALLOW_CONNECTIONS false came along with the copy), in
// one round trip over the session ready opened, and records the new
// instance in the catalog, so that routes to it resolve.
func (c *replicaCopy) register(ctx context.Context) (any, error) {
	dbs := c.r.databases()
	err := c.r.admin.do(ctx, c.newInst, dbs, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, allowConnections(dbs, true))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open the %d tenant databases on the new instance: %w", len(dbs), err)
	}
	c.registered = true // even a failed RegisterInstance may have committed
	if err := c.r.m.cfg.Catalog.RegisterInstance(ctx, c.newInst); err != nil {
		return nil, err
	}
	c.r.tgt = c.newInst
	return map[string]string{"instance": c.newInst.ID, "endpoint": c.newInst.Endpoint.String()}, nil
}

func (c *replicaCopy) finished() []stepDef { return nil }

// undo takes the new instance out of the catalog (no route leads there
// any more: nothing is placed there, and the conversion can be tried
// again under the same new ID), and removes a replica that was not
// promoted; one that was is no replica any more, and stays.
func (c *replicaCopy) undo(ctx context.Context, d map[string]any) error {
	if c.registered {
		err := c.r.m.cfg.Catalog.UnregisterInstance(ctx, c.r.p.NewInstance)
		if err != nil && !errors.Is(err, fleet.ErrInstanceNotFound) {
			return fmt.Errorf("unregister the new instance %q (the old instance serves again): %w", c.r.p.NewInstance, err)
		}
		d["unregistered"] = c.r.p.NewInstance
	}
	// The converter refuses to remove a replica that really is promoted,
	// whose promotion the journal may not know of.
	if c.touched && !c.promoted {
		if err := c.abort(ctx); err != nil {
			return fmt.Errorf("remove the replica (the old instance serves again): %w", err)
		}
	}
	if c.promoted {
		d["note"] = "the replica was promoted before the rollback: it is no longer a replica; remove it"
	}
	return nil
}

func (c *replicaCopy) abort(ctx context.Context) error {
	if c.conv == nil {
		if c.r.m.cfg.Converter == nil {
			return errors.New("Config.Converter is nil: the replica of an interrupted conversion is removed by the Converter that built it")
		}
		conv, err := c.r.m.cfg.Converter.Start(ctx, c.spec())
		if err != nil {
			return err
		}
		c.conv = conv
	}
	return c.conv.Abort(ctx)
}

func (c *replicaCopy) resumed(_ []Entry, seen map[Step]Status) error {
	_, c.touched = seen[StepReplica]
	c.promoted = seen[StepPromote] == StatusFinished
	_, c.registered = seen[StepRegister]
	return nil
}

// close leaves the replica to its converter.
func (c *replicaCopy) close() {}
