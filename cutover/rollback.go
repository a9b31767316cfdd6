package cutover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/replica"
)

// rollbackTimeout bounds a rollback, which runs even when the move's
// context has ended.
const rollbackTimeout = 2 * time.Minute

// streamAborter is the optional capability of a replica.Provider to abort
// a stream without a handle (replica/logical has it).
type streamAborter interface {
	Abort(ctx context.Context, spec replica.Spec) error
}

// rollback undoes a move that has not switched: fences released, the
// route back to the source unpaused with a new epoch, the stream aborted
// (unless kept). It returns cause wrapped in ErrRolledBack, or joined with
// the rollback's own failure, in which case the move stays open in the
// journal for Resume.
func (r *run) rollback(ctx context.Context, cause error) error {
	reason, _ := r.rollbackReason(cause)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if r.switchAttempted {
		// A switch that failed may still have committed: then the
		// target serves, and going back would lose what it took.
		switched, err := r.m.switchWentThrough(ctx, r)
		if err != nil {
			return errors.Join(cause, fmt.Errorf("cutover: cannot tell whether the switch went through, so the move stays open for Resume: %w", err))
		}
		if switched {
			r.closeWindow()
			return r.afterSwitch(ctx)
		}
	}
	// In this order, each step only once the one before it worked: the
	// fences down, then the route back to the source, and only with the
	// source serving again, the target's copy dropped. A failure leaves
	// the move open for Resume with nothing lost.
	err := r.step(ctx, StepRollback, func(ctx context.Context) (any, error) {
		var errs []error
		for i := len(r.held) - 1; i >= 0; i-- {
			if err := r.held[i].Release(ctx, r.fenceTarget()); err != nil {
				errs = append(errs, fmt.Errorf("release fence %s: %w", r.held[i].Name(), err))
			}
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		var published *epochDetail
		if r.route.touched {
			d, err := r.publish(ctx, r.src, false)
			if err != nil {
				return nil, fmt.Errorf("route back to %s: %w", r.p.Source, err)
			}
			published = &d
		}
		r.closeWindow()
		if r.streamTouched && !r.p.KeepStream {
			if err := r.abortStream(ctx); err != nil {
				return nil, fmt.Errorf("abort stream (the source serves again): %w", err)
			}
		}
		return map[string]any{"reason": reason, "route": published}, nil
	})
	if err != nil {
		return errors.Join(cause, err)
	}
	return r.rolledBack(ctx, cause, reason)
}

func (r *run) abortStream(ctx context.Context) error {
	if r.stream != nil {
		return r.stream.Abort(ctx)
	}
	if a, ok := r.m.cfg.Provider.(streamAborter); ok {
		return a.Abort(ctx, r.spec())
	}
	s, err := r.m.cfg.Provider.Start(ctx, r.spec())
	if err != nil {
		return err
	}
	r.stream = s
	return s.Abort(ctx)
}
