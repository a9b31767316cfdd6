package cutover

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// rollbackTimeout bounds a rollback, which runs even when the run's
// context has ended.
const rollbackTimeout = 2 * time.Minute

// rollback undoes a run that has not switched: fences released, the
// routes back to the source unpaused with new epochs, the copy removed
// (a stream aborted unless kept; a replica that was not promoted
// removed, a registered new instance unregistered). It returns cause
// wrapped in ErrRolledBack, or joined with the rollback's own failure, in
// which case the run stays open in the journal for Resume.
func (r *run) rollback(ctx context.Context, cause error) error {
	reason := r.rollbackReason(cause)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if r.switchAttempted {
		// A switch that failed may still have committed: then the
		// destination serves, and going back would lose what it took.
		switched, err := r.switchWentThrough(ctx)
		if err != nil {
			return errors.Join(cause, fmt.Errorf("cutover: cannot tell whether the switch went through, so %q stays open for Resume: %w", r.p.Move, err))
		}
		if switched {
			r.closeWindow()
			return r.afterSwitch(ctx, nil, nil)
		}
	}
	// In this order, each only once the one before it worked: the fences
	// down, then the routes back to the source, and only with the source
	// serving again, the copy removed. A failure leaves the run open for
	// Resume with nothing lost.
	err := r.step(ctx, StepRollback, func(ctx context.Context) (any, error) {
		if err := r.releaseFences(ctx); err != nil {
			return nil, err
		}
		// Every touched route is published back even if one fails; the
		// copy goes only when all were.
		touched := r.routeRefs(func(tr *tenantRoute) bool { return tr.touched })
		if err := r.m.publishSet(ctx, touched, r.src, false); err != nil {
			return nil, fmt.Errorf("routes back to %s: %w", r.src.ID, err)
		}
		r.closeWindow()
		d := map[string]any{"reason": reason, "routes": len(touched)}
		if err := r.copy.undo(ctx, d); err != nil {
			return nil, err
		}
		return d, nil
	})
	if err != nil {
		return errors.Join(cause, err)
	}
	return r.rolledBack(ctx, cause, reason)
}

// switchWentThrough reads the routes back from the Publisher: the switch
// went through if they point at the destination, unpaused, published by
// this run. Only an authoritative read can tell, so a Publisher without
// Published makes it an error rather than a guess. When some switched
// and some did not (a batch cut off tenant by tenant), it goes forward:
// the routes that switched serve from the destination already, and the
// others are published there too.
func (r *run) switchWentThrough(ctx context.Context) (bool, error) {
	pr, ok := r.m.cfg.Publisher.(PublishedReader)
	if !ok {
		return false, fmt.Errorf("the Publisher (%T) cannot read routes back (it has no Published method)", r.m.cfg.Publisher)
	}
	switched := make([]bool, len(r.routes))
	routes, err := r.m.publishedSet(ctx, pr, r.routeTenants())
	if err != nil {
		return false, err
	}
	for i, p := range routes {
		if !p.found {
			continue
		}
		tr, route := &r.routes[i], p.route
		tr.epoch = max(tr.epoch, route.Epoch)
		switched[i] = route.Move == r.p.Move && route.Instance == r.p.destination() && !route.Paused
	}
	n := 0
	for _, s := range switched {
		if s {
			n++
		}
	}
	if n == 0 || n == len(r.routes) {
		return n > 0, nil
	}
	if r.tgt.ID == "" {
		if r.tgt, err = r.m.cfg.Catalog.Instance(ctx, r.p.destination()); err != nil {
			return false, err
		}
	}
	var rest []*tenantRoute
	for i := range r.routes {
		if !switched[i] {
			rest = append(rest, &r.routes[i])
		}
	}
	if err := r.m.publishSet(ctx, rest, r.tgt, false); err != nil {
		return false, err
	}
	return true, nil
}
