package cutover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// forward is the move, one step after the other.
func (r *run) forward(ctx context.Context) error {
	if err := r.step(ctx, StepPlan, func(context.Context) (any, error) { return r.p, nil }); err != nil {
		if errors.Is(err, ErrMoveIDUsed) {
			return err // someone else's journal: nothing of ours to undo
		}
		return r.rollback(ctx, err)
	}
	if err := r.step(ctx, StepPreflight, r.preflight); err != nil {
		return r.rollback(ctx, err)
	}
	if err := r.step(ctx, StepStream, r.startStream); err != nil {
		return r.rollback(ctx, err)
	}
	if err := r.step(ctx, StepCatchUp, r.catchUp); err != nil {
		return r.rollback(ctx, err)
	}
	if err := r.window(ctx); err != nil {
		return r.rollback(ctx, err)
	}
	return r.afterSwitch(ctx)
}

// window holds writes, brings the target level with the source, and
// switches the route, within the budget.
func (r *run) window(ctx context.Context) error {
	if err := r.checkLocks(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, r.m.cfg.WindowBudget)
	defer cancel()
	r.openWindow()
	err := r.windowSteps(wctx)
	if err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%w (%s): %w", ErrBudgetExceeded, r.m.cfg.WindowBudget, err)
	}
	return err
}

func (r *run) windowSteps(ctx context.Context) error {
	if !r.m.cfg.NoRoutePause {
		if err := r.step(ctx, StepPause, func(ctx context.Context) (any, error) {
			return r.publish(ctx, r.src, true)
		}); err != nil {
			return err
		}
	}
	if err := r.step(ctx, StepDrain, func(ctx context.Context) (any, error) {
		return r.m.drainDatabase(ctx, r.src, r.p.Database)
	}); err != nil {
		return err
	}
	records, err := recordFences(r.m.cfg.Fences, []FenceTarget{r.fenceTarget()})
	if err != nil {
		return err
	}
	if err := r.stepFrom(ctx, StepFence, fenceStart{Records: records}, r.holdFences); err != nil {
		return err
	}
	var barrier replica.Position
	if err := r.step(ctx, StepBarrier, func(ctx context.Context) (any, error) {
		var err error
		barrier, err = r.stream.Barrier(ctx)
		return map[string]string{"position": barrier.String()}, err
	}); err != nil {
		return err
	}
	if err := r.step(ctx, StepWaitTarget, func(ctx context.Context) (any, error) {
		return nil, r.stream.WaitFor(ctx, barrier)
	}); err != nil {
		return err
	}
	if err := r.step(ctx, StepSyncSequences, func(ctx context.Context) (any, error) {
		return nil, r.stream.SyncSequences(ctx)
	}); err != nil {
		return err
	}
	if err := r.step(ctx, StepVerify, r.verify); err != nil {
		return err
	}
	return r.switchStep(ctx, func(ctx context.Context) (any, error) {
		return r.publish(ctx, r.tgt, false)
	})
}

func (r *run) startStream(ctx context.Context) (any, error) {
	r.streamTouched = true
	s, err := r.m.cfg.Provider.Start(ctx, r.spec())
	if err != nil {
		return nil, err
	}
	r.stream = s
	return map[string]string{"stream": s.ID()}, nil
}

// catchUp waits until the copy is done and the lag is under CatchUpLag,
// reporting progress about once a second.
func (r *run) catchUp(ctx context.Context) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, r.m.cfg.CatchUpTimeout)
	defer cancel()
	var lastEvent time.Time
	for {
		p, err := r.stream.Progress(ctx)
		if err == nil && p.Err != nil {
			err = p.Err
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w after %s: %w", ErrCatchUpTimeout, r.m.cfg.CatchUpTimeout, err)
			}
			return nil, err
		}
		r.rep.BytesCopied = p.BytesCopied
		if time.Since(lastEvent) >= time.Second {
			lastEvent = time.Now()
			r.m.emit(&Event{Kind: EventProgress, Move: r.p.Move, Tenant: r.p.Tenant, Step: StepCatchUp, Progress: &p})
		}
		if p.Phase == replica.PhaseStreaming && p.LagBytes <= r.m.cfg.CatchUpLag {
			return map[string]int64{"lag_bytes": p.LagBytes, "bytes_copied": p.BytesCopied}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w after %s (phase %s, %d of %d tables copied, lag %d bytes)",
				ErrCatchUpTimeout, r.m.cfg.CatchUpTimeout, p.Phase, p.TablesDone, p.TablesTotal, p.LagBytes)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// drain waits, up to DrainGrace, until no client session on the source
// database is inside a transaction or running a statement: the work the
// paused route let in has finished. What is still running then is ended
// by the fence.
func (m *Mover) drainDatabase(ctx context.Context, src fleet.Instance, database string) (any, error) {
	if m.cfg.DrainGrace < 0 {
		return nil, nil
	}
	conn, err := connectAdmin(ctx, src, database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(m.cfg.DrainGrace)
	for {
		var busy int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = $1 AND backend_type = 'client backend' AND state <> 'idle'
			AND pid <> pg_backend_pid()`, database).Scan(&busy); err != nil {
			return nil, fmt.Errorf("count in-flight sessions: %w", err)
		}
		if busy == 0 || time.Now().After(deadline) {
			return map[string]int{"still_busy": busy}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// fencePIDer is the optional capability of a replica.Stream to name the
// source backends it needs inside the window (replica/logical has it).
type fencePIDer interface {
	FencePIDs(ctx context.Context) ([]uint32, error)
}

func (r *run) holdFences(ctx context.Context) (any, error) {
	target := r.fenceTarget()
	if fp, ok := r.stream.(fencePIDer); ok {
		pids, err := fp.FencePIDs(ctx)
		if err != nil {
			return nil, fmt.Errorf("the stream's sessions to spare: %w", err)
		}
		target.Spare = pids
	}
	var names []string
	for _, f := range r.m.cfg.Fences {
		// Recorded before Hold: a Hold that fails half-way is still
		// released.
		r.held = append(r.held, f)
		if err := f.Hold(ctx, target); err != nil {
			return nil, fmt.Errorf("fence %s: %w", f.Name(), err)
		}
		names = append(names, f.Name())
	}
	if err := r.checkPrepared(ctx); err != nil {
		return nil, err
	}
	if !r.m.cfg.NoRoutePause {
		r.rep.Fences = append([]string{"route pause"}, names...)
	} else {
		r.rep.Fences = names
	}
	return map[string][]string{"fences": names}, nil
}

func (r *run) verify(ctx context.Context) (any, error) {
	if err := r.stream.CheckSchema(ctx); err != nil {
		return nil, err
	}
	if err := r.stream.Verify(ctx, r.p.Verify); err != nil {
		return nil, err
	}
	r.rep.Verified = r.p.Verify
	return map[string]string{"level": r.p.Verify.String()}, nil
}

// afterSwitch records the move and makes the target independent. It only
// goes forward: the route already sends the tenant to the target.
func (r *run) afterSwitch(ctx context.Context) error {
	if err := r.step(ctx, StepCatalog, r.recordInCatalog); err != nil {
		return err
	}
	if err := r.step(ctx, StepFinishStream, r.finishStream); err != nil {
		return err
	}
	return r.step(ctx, StepDone, func(context.Context) (any, error) { return nil, nil })
}

func (r *run) recordInCatalog(ctx context.Context) (any, error) {
	err := r.m.cfg.Catalog.Assign(ctx, r.p.Tenant, r.p.Target, &fleet.AssignOpts{From: r.p.Source})
	if errors.Is(err, fleet.ErrAssignConflict) {
		// Already recorded by an earlier run of this move.
		if t, lerr := r.m.cfg.Catalog.Locate(ctx, r.p.Tenant); lerr == nil && t.Instance == r.p.Target {
			return nil, nil
		}
	}
	return nil, err
}

// checkPrepared refuses a window with prepared transactions in the source
// database: they are not streamed (they are decoded only when committed),
// and once the database is fenced they can be committed nowhere.
// Preflight checked too, but one may have been prepared since.
func (r *run) checkPrepared(ctx context.Context) error {
	conn, err := connectAdmin(ctx, r.src, r.p.Database)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE database = $1", r.p.Database).Scan(&n); err != nil {
		return fmt.Errorf("count prepared transactions: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%d prepared transaction(s) in %q appeared during the move: COMMIT PREPARED or ROLLBACK PREPARED them on the source, then move again",
			n, r.p.Database)
	}
	return nil
}
