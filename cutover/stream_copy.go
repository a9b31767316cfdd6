package cutover

import (
	"context"
	"errors"
	"fmt"

	"github.com/daisychain-db/daisychain/replica"
)

// streamCopy is a move's copier: a stream (Config.Provider, logical by
// default) of the tenant database into the target instance.
type streamCopy struct {
	r      *run
	stream replica.Stream
	// touched: the stream may exist, so a rollback aborts it.
	touched bool
	// snapshot is the target's snapshot taken in the window, for the
	// verification after the switch; verified: the stream could not
	// take one, and the target was verified in the window.
	snapshot string
	verified bool
	// reversePrepared: the reverse stream may exist (see reverse.go);
	// grantees could connect to the source database before the move;
	// reverseFrom is where the reverse starts, read in the window and
	// journaled with the switch (0 before).
	reversePrepared bool
	grantees        []string
	reverseFrom     replica.Position
}

func (c *streamCopy) spec() replica.Spec {
	r := c.r
	target := r.p.Database
	if r.p.TargetDatabase != "" {
		target = r.p.TargetDatabase
	}
	return replica.Spec{
		ID:             r.p.Move,
		Source:         r.src.Admin,
		SourceDatabase: r.p.Database,
		Target:         r.tgt.Admin,
		TargetDatabase: target,
		Options:        replica.Options{Logger: r.m.cfg.Logger},
	}
}

func (c *streamCopy) startStep() Step { return StepStream }

func (c *streamCopy) start(ctx context.Context) (follower, error) {
	c.touched = true
	s, err := c.r.m.cfg.Provider.Start(ctx, c.spec())
	if err != nil {
		return nil, err
	}
	c.stream = s
	return s, nil
}

// preflight: the target's capacity and the stream's own preflight.
func (c *streamCopy) preflight(ctx context.Context) []string {
	var problems []string
	if err := c.r.checkCapacity(ctx); err != nil {
		problems = append(problems, err.Error())
	}
	if c.r.p.Reverse {
		problems = append(problems, c.r.reverseCapacity(ctx)...)
	}
	if !c.r.p.rehearsal() { // a rehearsal retires nothing
		problems = append(problems, c.r.earlierReverse(ctx)...)
	}
	report, err := c.r.m.cfg.Provider.Preflight(ctx, c.spec())
	if err != nil {
		return append(problems, fmt.Sprintf("stream: %v", err))
	}
	for _, p := range report.Problems {
		problems = append(problems, fmt.Sprintf("stream: %s", p))
	}
	return problems
}

func (c *streamCopy) ready(ctx context.Context) error {
	if rd, ok := c.stream.(Readier); ok {
		return rd.Ready(ctx)
	}
	return nil
}

func (c *streamCopy) spare() FenceSparer {
	if fs, ok := c.stream.(FenceSparer); ok {
		return fs
	}
	return nil
}

// leveled: the sequences, which logical replication does not carry, the
// schema, and the target's snapshot: nothing whose cost grows with the
// data.
func (c *streamCopy) leveled() []stepDef {
	var steps []stepDef
	if c.r.p.Reverse {
		// First: the snapshot holds a target session until the
		// verification, and the read would wait for a new one.
		steps = append(steps, stepDef{step: StepReverseStart, journal: journalFailure, run: c.readReverseStart})
	}
	return append(steps,
		stepDef{step: StepSyncSequences, journal: journalFailure, run: func(ctx context.Context) (any, error) {
			return nil, c.stream.SyncSequences(ctx)
		}},
		stepDef{step: StepSnapshot, journal: journalFailure, run: c.takeSnapshot})
}

// takeSnapshot checks the schema and holds the target's snapshot; a
// stream that cannot is verified here, inside the window.
func (c *streamCopy) takeSnapshot(ctx context.Context) (any, error) {
	if err := c.stream.CheckSchema(ctx); err != nil {
		return nil, err
	}
	level := c.r.p.Verify
	if level == replica.VerifyOff {
		return nil, nil
	}
	if ts, ok := c.stream.(TargetSnapshotter); ok {
		id, err := ts.SnapshotTarget(ctx)
		c.snapshot = id
		return map[string]string{"snapshot": id}, err
	}
	if err := c.stream.Verify(ctx, level); err != nil {
		return nil, err
	}
	c.verified = true
	c.r.rep.Verified = level
	return map[string]string{"verified": level.String()}, nil
}

func (c *streamCopy) finished() []stepDef {
	steps := []stepDef{
		{step: StepVerify, run: c.verify},
		{step: StepFinishStream, run: c.finish},
	}
	if c.r.p.Reverse {
		steps = append(steps, stepDef{step: StepReverse, run: c.startReverse})
	}
	return steps
}

// verify compares the target's snapshot with the fenced source. The
// switch is done: a mismatch is reported (Report.VerifyMismatch, an
// event), and so is a verification that could not run, neither failing
// the step, so that the move completes either way.
func (c *streamCopy) verify(ctx context.Context) (any, error) {
	level := c.r.p.Verify
	switch {
	case level == replica.VerifyOff:
		return nil, nil
	case c.verified:
		return map[string]string{"verified": level.String(), "where": "in the window"}, nil
	case c.snapshot == "":
		c.r.rep.VerifyError = "the snapshot taken in the window ended with the interrupted run"
		return map[string]string{"skipped": c.r.rep.VerifyError}, nil
	}
	err := c.stream.(TargetSnapshotter).VerifySnapshot(ctx, c.snapshot, level)
	switch {
	case err == nil:
		c.r.rep.Verified = level
		return map[string]string{"verified": level.String()}, nil
	case errors.Is(err, replica.ErrVerifyMismatch):
		c.r.rep.VerifyMismatch = err.Error()
		c.r.m.emit(&Event{Kind: EventVerifyMismatch, Move: c.r.p.Move, Tenant: c.r.p.Tenant, Step: StepVerify, Err: err})
		c.r.m.cfg.Logger.Warn("cutover: the target differs from the source", "move", c.r.p.Move, "tenant", c.r.p.Tenant, "error", err)
		return map[string]string{"mismatch": err.Error()}, nil
	default:
		c.r.rep.VerifyError = err.Error()
		c.r.m.cfg.Logger.Warn("cutover: the target could not be verified", "move", c.r.p.Move, "tenant", c.r.p.Tenant, "error", err)
		return map[string]string{"error": err.Error()}, nil
	}
}

// finish finishes the stream (see end); first, for a move with a
// reverse stream, it records where the reverse starts, which needs the
// forward stream's subscription.
func (c *streamCopy) finish(ctx context.Context) (any, error) {
	var detail any
	if c.r.p.Reverse && c.reversePrepared {
		pos, err := c.recordReverseStart(ctx)
		if err != nil {
			return nil, err
		}
		detail = map[string]string{"reverse_from": pos.String()}
	}
	var bySpec func(context.Context, replica.Spec) error
	if f, ok := c.r.m.cfg.Provider.(StreamFinisher); ok {
		bySpec = f.Finish
	}
	return detail, c.end(ctx, replica.Stream.Finish, bySpec)
}

// undo aborts the stream, which drops the target's copy, unless the
// configuration keeps it for a retry.
func (c *streamCopy) undo(ctx context.Context, d map[string]any) error {
	if err := c.abortReverse(ctx); err != nil {
		return err
	}
	if !c.touched || c.r.p.KeepStream {
		return nil
	}
	if err := c.abort(ctx); err != nil {
		return fmt.Errorf("abort stream (the source serves again): %w", err)
	}
	return nil
}

// abort aborts the stream (see end).
func (c *streamCopy) abort(ctx context.Context) error {
	var bySpec func(context.Context, replica.Spec) error
	if a, ok := c.r.m.cfg.Provider.(StreamAborter); ok {
		bySpec = a.Abort
	}
	return c.end(ctx, replica.Stream.Abort, bySpec)
}

// end finishes or aborts the stream (byHandle): through the handle this
// run holds or, in a move resumed without one, through the Provider's
// capability to do it by the stream's spec (bySpec, nil when it has
// none), or else through a handle started again (Provider.Start resumes
// the stream).
func (c *streamCopy) end(ctx context.Context, byHandle func(replica.Stream, context.Context) error, bySpec func(context.Context, replica.Spec) error) error {
	if c.stream == nil && bySpec != nil {
		return bySpec(ctx, c.spec())
	}
	if c.stream == nil {
		s, err := c.r.m.cfg.Provider.Start(ctx, c.spec())
		if err != nil {
			return err
		}
		c.stream = s
	}
	return byHandle(c.stream, ctx)
}

func (c *streamCopy) resumed(entries []Entry, seen map[Step]Status) error {
	_, c.touched = seen[StepStream]
	_, c.reversePrepared = seen[StepReversePrepare]
	if seen[StepReversePrepare] == StatusFinished {
		var err error
		if c.grantees, err = journaledGrantees(entries); err != nil {
			return err
		}
		if c.reverseFrom, err = journaledReverseFrom(entries); err != nil {
			return err
		}
	}
	return nil
}

func (c *streamCopy) close() {
	if c.stream != nil {
		_ = c.stream.Close()
	}
}
