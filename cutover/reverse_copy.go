package cutover

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// reverseCopy is a revert's copier: the reverse stream a move left
// running, from the move's target (the revert's source, r.src) to the
// move's source copy (the revert's destination, r.tgt). It copies
// nothing; its window is a move's, plus open_source, which gives the
// source copy's CONNECT grants back before the switch. The snapshot and
// the verification are a stream's (the snapshot is of the source copy).
type reverseCopy struct {
	streamCopy
	// opened: open_source may have run, so a rollback fences the source
	// copy by privileges again.
	opened bool
}

// forwardSpec is the spec of the move's forward stream, by which the
// Provider names its reverse.
func (c *reverseCopy) forwardSpec() replica.Spec {
	return reverseOf(plan{Move: c.r.p.Reverts, Database: c.r.p.Database}, c.r.tgt.Admin, c.r.src.Admin)
}

func (c *reverseCopy) provider() (ReverseProvider, error) {
	rp, ok := c.r.m.cfg.Provider.(ReverseProvider)
	if !ok {
		return nil, fmt.Errorf("the Provider (%T) cannot run reverse streams (no ReverseProvider)", c.r.m.cfg.Provider)
	}
	return rp, nil
}

// start opens the reverse stream the move left running.
func (c *reverseCopy) start(ctx context.Context) (follower, error) {
	rp, err := c.provider()
	if err != nil {
		return nil, err
	}
	c.touched = true
	s, err := rp.StartReverse(ctx, c.forwardSpec())
	if err != nil {
		return nil, err
	}
	c.stream = s
	return s, nil
}

// preflight: the reverse must still be there and within its WAL bound;
// Revert checked it before it journaled anything, and checks again here
// for a Resume.
func (c *reverseCopy) preflight(ctx context.Context) []string {
	if err := c.r.m.reverseWithinBound(ctx, plan{Move: c.r.p.Reverts, Database: c.r.p.Database}, c.r.tgt, c.r.src); err != nil {
		return []string{err.Error()}
	}
	return nil
}

// ready also opens the admin session to the source copy's instance, which
// open_source uses inside the window.
func (c *reverseCopy) ready(ctx context.Context) error {
	if err := c.r.admin.open(ctx, c.r.tgt, c.r.databases()); err != nil {
		return err
	}
	return c.streamCopy.ready(ctx)
}

func (c *reverseCopy) leveled() []stepDef {
	return []stepDef{
		{step: StepSyncSequences, journal: journalFailure, run: func(ctx context.Context) (any, error) {
			return nil, c.stream.SyncSequences(ctx)
		}},
		{step: StepSnapshot, journal: journalFailure, run: c.takeSnapshot},
		{step: StepOpenSource, journal: journalStart, run: c.openSource},
	}
}

// openSource gives CONNECT on the source copy back to who had it before
// the move, on the session held to its instance: one statement.
func (c *reverseCopy) openSource(ctx context.Context) (any, error) {
	c.opened = true
	err := c.r.admin.do(ctx, c.r.tgt, c.r.databases(), func(conn *pgx.Conn) error {
		return openByPrivileges(ctx, conn, c.r.p.Database, c.r.p.Connect)
	})
	return map[string][]string{"connect": c.r.p.Connect}, err
}

func (c *reverseCopy) finished() []stepDef {
	return []stepDef{
		{step: StepVerify, run: c.verify},
		{step: StepFinishStream, run: c.finish},
	}
}

// finish ends the reverse stream (its subscription on the source copy,
// its slot and publication on the move's target), then drops the move's
// target copy, which serves no more and which the slot kept from being
// dropped: the revert leaves what a rollback leaves.
func (c *reverseCopy) finish(ctx context.Context) (any, error) {
	if c.stream != nil {
		if err := c.stream.Finish(ctx); err != nil {
			return nil, err
		}
	} else {
		rp, err := c.provider()
		if err != nil {
			return nil, err
		}
		if err := rp.AbortReverse(ctx, c.forwardSpec()); err != nil {
			return nil, err
		}
	}
	conn, err := connectAdmin(ctx, c.r.src, c.r.p.Database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{c.r.p.Database}.Sanitize()+" WITH (FORCE)"); err != nil {
		return nil, fmt.Errorf("drop the move's target copy: %w", err)
	}
	return map[string]string{"dropped": c.r.p.Database, "on": c.r.src.ID}, nil
}

// undo fences the source copy by privileges again if open_source may
// have opened it; the reverse stream goes on, ready for another Revert.
func (c *reverseCopy) undo(ctx context.Context, d map[string]any) error {
	if !c.opened {
		return nil
	}
	if err := fenceByPrivileges(ctx, c.r.tgt, c.r.p.Database); err != nil {
		return fmt.Errorf("fence the source copy by privileges again: %w", err)
	}
	d["source_fenced"] = true
	return nil
}

func (c *reverseCopy) resumed(_ []Entry, seen map[Step]Status) error {
	_, c.touched = seen[StepStream]
	_, c.opened = seen[StepOpenSource]
	return nil
}
