package cutover

import (
	"context"
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
}

// streamAborter is the optional capability of a replica.Provider to abort
// a stream without a handle (replica/logical has it).
type streamAborter interface {
	Abort(ctx context.Context, spec replica.Spec) error
}

// streamFinisher is the optional capability of a replica.Provider to
// finish a stream without a handle.
type streamFinisher interface {
	Finish(ctx context.Context, spec replica.Spec) error
}

// fencePIDer is the optional capability of a replica.Stream to name the
// source backends it needs inside the window (replica/logical has it).
type fencePIDer interface {
	FencePIDs(ctx context.Context) ([]uint32, error)
}

func (c *streamCopy) spec() replica.Spec {
	r := c.r
	return replica.Spec{
		ID:             r.p.Move,
		Source:         r.src.Admin,
		SourceDatabase: r.p.Database,
		Target:         r.tgt.Admin,
		TargetDatabase: r.p.Database,
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
	if rd, ok := c.stream.(readier); ok {
		return rd.Ready(ctx)
	}
	return nil
}

func (c *streamCopy) spare(ctx context.Context) ([]uint32, error) {
	if fp, ok := c.stream.(fencePIDer); ok {
		return fp.FencePIDs(ctx)
	}
	return nil, nil
}

// leveled: the sequences, which logical replication does not carry, and
// the verification.
func (c *streamCopy) leveled() []stepDef {
	return []stepDef{
		{step: StepSyncSequences, journal: journalFailure, run: func(ctx context.Context) (any, error) {
			return nil, c.stream.SyncSequences(ctx)
		}},
		{step: StepVerify, journal: journalFailure, run: c.verify},
	}
}

func (c *streamCopy) verify(ctx context.Context) (any, error) {
	if err := c.stream.CheckSchema(ctx); err != nil {
		return nil, err
	}
	level := c.r.p.Verify
	if err := c.stream.Verify(ctx, level); err != nil {
		return nil, err
	}
	c.r.rep.Verified = level
	return map[string]string{"level": level.String()}, nil
}

func (c *streamCopy) finished() []stepDef {
	return []stepDef{{step: StepFinishStream, run: c.finish}}
}

// finish finishes the stream, through the handle this run holds or, in a
// move resumed after its switch, without one.
func (c *streamCopy) finish(ctx context.Context) (any, error) {
	if c.stream != nil {
		return nil, c.stream.Finish(ctx)
	}
	if f, ok := c.r.m.cfg.Provider.(streamFinisher); ok {
		return nil, f.Finish(ctx, c.spec())
	}
	s, err := c.r.m.cfg.Provider.Start(ctx, c.spec())
	if err != nil {
		return nil, err
	}
	c.stream = s
	return nil, s.Finish(ctx)
}

// undo aborts the stream, which drops the target's copy, unless the
// configuration keeps it for a retry.
func (c *streamCopy) undo(ctx context.Context, d map[string]any) error {
	if !c.touched || c.r.p.KeepStream {
		return nil
	}
	if err := c.abort(ctx); err != nil {
		return fmt.Errorf("abort stream (the source serves again): %w", err)
	}
	return nil
}

func (c *streamCopy) abort(ctx context.Context) error {
	if c.stream != nil {
		return c.stream.Abort(ctx)
	}
	if a, ok := c.r.m.cfg.Provider.(streamAborter); ok {
		return a.Abort(ctx, c.spec())
	}
	s, err := c.r.m.cfg.Provider.Start(ctx, c.spec())
	if err != nil {
		return err
	}
	c.stream = s
	return s.Abort(ctx)
}

func (c *streamCopy) resumed(seen map[Step]Status) {
	_, c.touched = seen[StepStream]
}

func (c *streamCopy) close() {
	if c.stream != nil {
		_ = c.stream.Close()
	}
}
