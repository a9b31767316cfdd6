package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// Steps of Convert besides those of a tenant move.
const (
	StepReplica  Step = "replica"  // start (or resume) building the converted replica
	StepPromote  Step = "promote"  // the replica, caught up to the barrier, becomes a primary
	StepRegister Step = "register" // the promoted replica opened to its tenants and registered in the catalog
)

// ConvertRequest asks for a whole instance to move onto a converted
// replica of itself.
type ConvertRequest struct {
	// ID names the conversion; Resume takes it. Default: the instance ID
	// and the start time.
	ID string
	// Instance is the ID of the instance to convert.
	Instance string
	// NewInstance is the ID the converted replica gets in the catalog.
	NewInstance string
	// Limits of the new instance. Default: the old instance's.
	Limits *fleet.Limits
}

// convertPlan is a conversion as journaled in StepPlan.
type convertPlan struct {
	Kind        string         `json:"kind"` // "convert"
	Move        string         `json:"move"`
	Instance    string         `json:"instance"`
	NewInstance string         `json:"new_instance"`
	Limits      fleet.Limits   `json:"limits"`
	Tenants     []fleet.Tenant `json:"tenants"`
}

// convertRun is one execution of a conversion.
type convertRun struct {
	*stepper
	p       convertPlan
	src     fleet.Instance
	routes  []tenantRoute
	conv    replica.Conversion
	newInst fleet.Instance

	held                     []Fence
	replicaTouched, promoted bool
	// registered: the new instance may be in the catalog (the register
	// step started), so a rollback takes it out.
	registered bool
}

// Convert moves every tenant of an instance at once onto a converted
// replica of it, built by Config.Converter: one copy for the whole
// instance and one window for all its tenants, whose routes switch
// together to the new instance, which the catalog then records. The
// budget, rollback, journal, report and Resume are those of Move; the old
// instance is left fenced and intact.
//
// A request is refused, changing nothing, when its ID is already used
// (ErrMoveIDUsed), when a tenant of the instance is being moved
// (ErrMoveInProgress), or when a move onto or off the instance runs, or
// it is being converted already (ErrInstanceBusy); the error names the
// tenant or the instance and who holds it.
func (m *Mover) Convert(ctx context.Context, req ConvertRequest) (*Report, error) {
	if m.cfg.Converter == nil {
		return nil, fmt.Errorf("%w: Config.Converter is nil: Convert needs one (replica/physical for local instances)", ErrPreflight)
	}
	if req.Instance == "" || req.NewInstance == "" || req.Instance == req.NewInstance {
		return nil, fmt.Errorf("%w: ConvertRequest needs Instance and a different NewInstance", ErrPreflight)
	}
	src, err := m.cfg.Catalog.Instance(ctx, req.Instance)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	if _, err := m.cfg.Catalog.Instance(ctx, req.NewInstance); err == nil {
		return nil, fmt.Errorf("%w: instance %q is already registered: choose a new ID for the converted replica", ErrPreflight, req.NewInstance)
	}
	tenants, err := m.cfg.Catalog.Tenants(ctx, req.Instance)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	id := req.ID
	if id == "" {
		id = fmt.Sprintf("convert-%s-%s", req.Instance, time.Now().UTC().Format("20060102T150405.000"))
	}
	limits := src.Limits
	if req.Limits != nil {
		limits = *req.Limits
	}
	p := convertPlan{Kind: "convert", Move: id, Instance: src.ID, NewInstance: req.NewInstance, Limits: limits, Tenants: tenants}
	if err := m.checkIDUnused(ctx, id); err != nil {
		return nil, err
	}
	r := m.newConvertRun(p, src)
	locks, err := m.lock(ctx, fmt.Sprintf("conversion %q", id), p.locks()...)
	if err != nil {
		return nil, err
	}
	defer locks.Release()
	r.locks, r.first = locks, true
	err = r.forward(ctx)
	r.rep.Finished = time.Now()
	return r.rep, err
}

// locks are what a conversion holds: its instance and the new one for
// itself, and every tenant of the instance.
func (p convertPlan) locks() []Lock {
	locks := []Lock{instanceLock(p.Instance, false), instanceLock(p.NewInstance, false)}
	for _, t := range p.Tenants {
		locks = append(locks, tenantLock(t.ID))
	}
	return locks
}

func (m *Mover) newConvertRun(p convertPlan, src fleet.Instance) *convertRun {
	rep := &Report{Move: p.Move, Tenant: fmt.Sprintf("%d tenants", len(p.Tenants)), Source: p.Instance,
		Target: p.NewInstance, Started: time.Now(), WindowBudget: m.cfg.WindowBudget, Verified: replica.VerifyOff}
	r := &convertRun{stepper: &stepper{m: m, move: p.Move, subject: p.Instance, rep: rep}, p: p, src: src}
	for _, t := range p.Tenants {
		r.routes = append(r.routes, tenantRoute{tenant: t.ID, database: t.Database, move: p.Move})
	}
	return r
}

func (r *convertRun) spec() replica.ConvertSpec {
	return replica.ConvertSpec{ID: r.p.Move, Source: r.src.Admin, Logger: r.m.cfg.Logger}
}

func (r *convertRun) forward(ctx context.Context) error {
	if err := r.step(ctx, StepPlan, func(context.Context) (any, error) { return r.p, nil }); err != nil {
		if errors.Is(err, ErrMoveIDUsed) {
			return err // someone else's journal: nothing of ours to undo
		}
		return r.rollback(ctx, err)
	}
	if err := r.step(ctx, StepPreflight, r.preflight); err != nil {
		return r.rollback(ctx, err)
	}
	if err := r.step(ctx, StepReplica, func(ctx context.Context) (any, error) {
		r.replicaTouched = true
		c, err := r.m.cfg.Converter.Start(ctx, r.spec())
		r.conv = c
		return nil, err
	}); err != nil {
		return r.rollback(ctx, err)
	}
	if err := r.step(ctx, StepCatchUp, r.catchUp); err != nil {
		return r.rollback(ctx, err)
	}
	if err := r.checkLocks(ctx); err != nil {
		return r.rollback(ctx, err)
	}
	wctx, cancel := context.WithTimeout(ctx, r.m.cfg.WindowBudget)
	defer cancel()
	r.openWindow()
	if err := r.window(wctx); err != nil {
		if errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w (%s): %w", ErrBudgetExceeded, r.m.cfg.WindowBudget, err)
		}
		return r.rollback(ctx, err)
	}
	if err := r.step(ctx, StepCatalog, r.assignAll); err != nil {
		return err
	}
	return r.step(ctx, StepDone, func(context.Context) (any, error) { return nil, nil })
}

func (r *convertRun) preflight(ctx context.Context) (any, error) {
	var problems []string
	for i, t := range r.p.Tenants {
		route, err := r.m.cfg.Routes.Resolve(ctx, t.ID)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("route of %q: %v", t.ID, err))
		case route.Instance != r.p.Instance || route.Paused:
			problems = append(problems, fmt.Sprintf("route of %q is %s, not an unpaused route to %q", t.ID, route, r.p.Instance))
		}
		r.routes[i].epoch = max(r.routes[i].epoch, route.Epoch)
		if err := checkSourceDatabase(ctx, r.src, t.Database); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if pf, ok := r.m.cfg.Converter.(interface {
		Preflight(context.Context, replica.ConvertSpec) (*replica.PreflightReport, error)
	}); ok {
		report, err := pf.Preflight(ctx, r.spec())
		if err != nil {
			problems = append(problems, "replica: "+err.Error())
		} else {
			for _, p := range report.Problems {
				problems = append(problems, "replica: "+p.String())
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %d problem(s):\n  - %s", ErrPreflight, len(problems), strings.Join(problems, "\n  - "))
	}
	return map[string]int{"tenants": len(r.p.Tenants)}, nil
}

func (r *convertRun) catchUp(ctx context.Context) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, r.m.cfg.CatchUpTimeout)
	defer cancel()
	for {
		p, err := r.conv.Progress(ctx)
		if err == nil && p.Err != nil {
			err = p.Err
		}
		if err != nil {
			return nil, err
		}
		r.rep.BytesCopied = p.BytesCopied
		if p.Phase == replica.PhaseStreaming && p.LagBytes <= r.m.cfg.CatchUpLag {
			return map[string]int64{"lag_bytes": p.LagBytes, "bytes_copied": p.BytesCopied}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w after %s (phase %s, lag %d bytes)", ErrCatchUpTimeout, r.m.cfg.CatchUpTimeout, p.Phase, p.LagBytes)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *convertRun) fenceTarget(t fleet.Tenant, inst fleet.Instance) FenceTarget {
	// A physical replica holds no session in any tenant database: every
	// session there is ended.
	return FenceTarget{Tenant: t, Instance: inst, Spare: []uint32{}}
}

func (r *convertRun) window(ctx context.Context) error {
	if !r.m.cfg.NoRoutePause {
		if err := r.step(ctx, StepPause, func(ctx context.Context) (any, error) {
			return r.publishAll(ctx, r.src, true)
		}); err != nil {
			return err
		}
	}
	if err := r.step(ctx, StepDrain, func(ctx context.Context) (any, error) {
		for _, t := range r.p.Tenants {
			if _, err := r.m.drainDatabase(ctx, r.src, t.Database); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}); err != nil {
		return err
	}
	targets := make([]FenceTarget, len(r.p.Tenants))
	for i, t := range r.p.Tenants {
		targets[i] = r.fenceTarget(t, r.src)
	}
	records, err := recordFences(r.m.cfg.Fences, targets)
	if err != nil {
		return err
	}
	if err := r.stepFrom(ctx, StepFence, fenceStart{Records: records}, func(ctx context.Context) (any, error) {
		if !r.m.cfg.NoRoutePause {
			r.rep.Fences = []string{"route pause"}
		}
		for _, f := range r.m.cfg.Fences {
			r.held = append(r.held, f)
			for _, t := range r.p.Tenants {
				if err := f.Hold(ctx, r.fenceTarget(t, r.src)); err != nil {
					return nil, fmt.Errorf("fence %s of %q: %w", f.Name(), t.ID, err)
				}
			}
			r.rep.Fences = append(r.rep.Fences, f.Name())
		}
		return map[string][]string{"fences": r.rep.Fences}, nil
	}); err != nil {
		return err
	}
	var barrier replica.Position
	if err := r.step(ctx, StepBarrier, func(ctx context.Context) (any, error) {
		var err error
		barrier, err = r.conv.Barrier(ctx)
		return map[string]string{"position": barrier.String()}, err
	}); err != nil {
		return err
	}
	if err := r.step(ctx, StepWaitTarget, func(ctx context.Context) (any, error) {
		return nil, r.conv.WaitFor(ctx, barrier)
	}); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// From the promotion on, the old instance's copy stays the way back
	// until the switch; the promoted replica is what the switch opens.
	if err := r.step(ctx, StepPromote, func(ctx context.Context) (any, error) {
		if err := r.conv.Promote(ctx); err != nil {
			return nil, err
		}
		r.promoted = true
		return nil, nil
	}); err != nil {
		return err
	}
	if err := r.step(ctx, StepRegister, r.register); err != nil {
		return err
	}
	return r.switchStep(ctx, func(ctx context.Context) (any, error) {
		return r.publishAll(ctx, r.newInst, false)
	})
}

// register opens the tenant databases of the promoted replica (the
// database fence's ALLOW_CONNECTIONS false came along with the copy) and
// records the new instance in the catalog, so that routes to it resolve.
func (r *convertRun) register(ctx context.Context) (any, error) {
	r.newInst = fleet.Instance{ID: r.p.NewInstance, Admin: r.conv.AdminConnString(),
		Endpoint: r.conv.Endpoint(), Limits: r.p.Limits}
	for _, t := range r.p.Tenants {
		if err := (DatabaseFence{}).Release(ctx, r.fenceTarget(t, r.newInst)); err != nil {
			return nil, fmt.Errorf("open %q on the new instance: %w", t.Database, err)
		}
	}
	r.registered = true // even a failed RegisterInstance may have committed
	if err := r.m.cfg.Catalog.RegisterInstance(ctx, r.newInst); err != nil {
		return nil, err
	}
	return map[string]string{"instance": r.newInst.ID, "endpoint": r.newInst.Endpoint.String()}, nil
}

func (r *convertRun) publishAll(ctx context.Context, inst fleet.Instance, paused bool) (any, error) {
	var ds []epochDetail
	for i := range r.routes {
		d, err := r.m.publishRoute(ctx, &r.routes[i], inst, paused)
		if err != nil {
			return ds, err
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func (r *convertRun) assignAll(ctx context.Context) (any, error) {
	for _, t := range r.p.Tenants {
		err := r.m.cfg.Catalog.Assign(ctx, t.ID, r.p.NewInstance, &fleet.AssignOpts{From: r.p.Instance})
		if errors.Is(err, fleet.ErrAssignConflict) {
			if cur, lerr := r.m.cfg.Catalog.Locate(ctx, t.ID); lerr == nil && cur.Instance == r.p.NewInstance {
				continue
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return map[string]int{"tenants": len(r.p.Tenants)}, nil
}

// rollback undoes a conversion that has not switched, in the order and
// with the care of a tenant move's rollback: fences down, routes back,
// and only then the replica removed.
func (r *convertRun) rollback(ctx context.Context, cause error) error {
	reason, _ := r.rollbackReason(cause)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if r.switchAttempted {
		switched, err := r.switchWentThrough(ctx)
		if err != nil {
			return errors.Join(cause, fmt.Errorf("cutover: cannot tell whether the switch went through, so the conversion stays open for Resume: %w", err))
		}
		if switched {
			r.closeWindow()
			if err := r.step(ctx, StepCatalog, r.assignAll); err != nil {
				return err
			}
			return r.step(ctx, StepDone, func(context.Context) (any, error) { return nil, nil })
		}
	}
	err := r.step(ctx, StepRollback, func(ctx context.Context) (any, error) {
		for i := len(r.held) - 1; i >= 0; i-- {
			for _, t := range r.p.Tenants {
				if err := r.held[i].Release(ctx, r.fenceTarget(t, r.src)); err != nil {
					return nil, fmt.Errorf("release fence %s of %q: %w", r.held[i].Name(), t.ID, err)
				}
			}
		}
		// Every tenant gets its route back even if one fails; the
		// replica goes only when all did.
		var errs []error
		for i := range r.routes {
			if !r.routes[i].touched {
				continue
			}
			if _, err := r.m.publishRoute(ctx, &r.routes[i], r.src, false); err != nil {
				errs = append(errs, fmt.Errorf("route %q back to %s: %w", r.routes[i].tenant, r.p.Instance, err))
			}
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		r.closeWindow()
		// No route leads to the new instance any more: out of the
		// catalog with it, so that nothing is placed there and the
		// conversion can be tried again under the same ID.
		d := map[string]string{"reason": reason}
		if r.registered {
			err := r.m.cfg.Catalog.UnregisterInstance(ctx, r.p.NewInstance)
			if err != nil && !errors.Is(err, fleet.ErrInstanceNotFound) {
				return nil, fmt.Errorf("unregister the new instance %q (the old instance serves again): %w", r.p.NewInstance, err)
			}
			d["unregistered"] = r.p.NewInstance
		}
		// A replica that was not promoted (or whose promotion is not
		// known to have happened) goes; the converter refuses to remove
		// one that really is promoted.
		if r.replicaTouched && !r.promoted {
			if err := r.abortReplica(ctx); err != nil {
				return nil, fmt.Errorf("remove the replica (the old instance serves again): %w", err)
			}
		}
		if r.promoted {
			d["note"] = "the replica was promoted before the rollback: it is no longer a replica; remove it"
		}
		return d, nil
	})
	if err != nil {
		return errors.Join(cause, err)
	}
	return r.rolledBack(ctx, cause, reason)
}

func (r *convertRun) abortReplica(ctx context.Context) error {
	if r.conv == nil {
		c, err := r.m.cfg.Converter.Start(ctx, r.spec())
		if err != nil {
			return err
		}
		r.conv = c
	}
	return r.conv.Abort(ctx)
}

// switchWentThrough: the switch went through if every tenant's route,
// read back from the Publisher, points at the new instance, published by
// this conversion. Some but not all is an error Resume must settle.
func (r *convertRun) switchWentThrough(ctx context.Context) (bool, error) {
	pr, ok := r.m.cfg.Publisher.(publishedReader)
	if !ok {
		return false, fmt.Errorf("the Publisher (%T) cannot read routes back (it has no Published method)", r.m.cfg.Publisher)
	}
	switched := 0
	for i, t := range r.p.Tenants {
		route, found, err := pr.Published(ctx, t.ID)
		if err != nil {
			return false, err
		}
		if found {
			r.routes[i].epoch = max(r.routes[i].epoch, route.Epoch)
			if route.Move == r.p.Move && route.Instance == r.p.NewInstance && !route.Paused {
				switched++
			}
		}
	}
	if switched > 0 && switched < len(r.p.Tenants) {
		// Go forward: the routes that switched serve from the new
		// instance already; finish the others.
		inst, err := r.m.cfg.Catalog.Instance(ctx, r.p.NewInstance)
		if err != nil {
			return false, err
		}
		r.newInst = inst
		if _, err := r.publishAll(ctx, inst, false); err != nil {
			return false, err
		}
		return true, nil
	}
	return switched == len(r.p.Tenants) && switched > 0, nil
}

// resumeConvert completes or rolls back a conversion from its journal.
func (m *Mover) resumeConvert(ctx context.Context, entries []Entry, p convertPlan) (*Report, error) {
	src, err := m.cfg.Catalog.Instance(ctx, p.Instance)
	if err != nil {
		return nil, fmt.Errorf("cutover: resume %q: %w", p.Move, err)
	}
	r := m.newConvertRun(p, src)
	r.rep.Resumed = true
	seen := map[Step]Status{}
	for _, e := range entries {
		if seen[e.Step] != StatusFinished {
			seen[e.Step] = e.Status
		}
		var ds []epochDetail
		if json.Unmarshal(e.Detail, &ds) == nil {
			for _, d := range ds {
				for i := range r.routes {
					if r.routes[i].tenant == d.Tenant {
						r.routes[i].epoch = max(r.routes[i].epoch, d.Epoch)
						r.routes[i].touched = true
					}
				}
			}
		}
	}
	// The journal has a publishing step's epochs only once it finished:
	// read each route back, and take it as this conversion's to undo only
	// if this conversion published it.
	if _, ok := seen[StepPause]; ok {
		pr, ok := m.cfg.Publisher.(publishedReader)
		if !ok {
			return r.rep, fmt.Errorf("cutover: resume %q: the Publisher (%T) cannot read routes back (it has no Published method)", p.Move, m.cfg.Publisher)
		}
		for i := range r.routes {
			route, found, err := pr.Published(ctx, r.routes[i].tenant)
			if err != nil {
				return r.rep, fmt.Errorf("cutover: resume %q: %w", p.Move, err)
			}
			if found {
				r.routes[i].epoch = max(r.routes[i].epoch, route.Epoch)
				if route.Move == p.Move {
					r.routes[i].touched = true
				}
			}
		}
	}
	_, r.replicaTouched = seen[StepReplica]
	r.promoted = seen[StepPromote] == StatusFinished
	_, r.registered = seen[StepRegister]
	_, r.switchAttempted = seen[StepSwitch]
	if _, ok := seen[StepFence]; ok {
		if r.held, err = m.heldBefore(entries); err != nil {
			return r.rep, fmt.Errorf("cutover: resume %q: %w", p.Move, err)
		}
	}
	if seen[StepSwitch] == StatusFinished {
		if err := r.step(ctx, StepCatalog, r.assignAll); err != nil {
			return r.rep, err
		}
		err = r.step(ctx, StepDone, func(context.Context) (any, error) { return nil, nil })
	} else {
		last := entries[len(entries)-1]
		err = r.rollback(ctx, fmt.Errorf("resumed after an interruption at %s (%s)", last.Step, last.Status))
		if errors.Is(err, ErrRolledBack) {
			err = nil
		}
	}
	r.rep.Finished = time.Now()
	return r.rep, err
}
