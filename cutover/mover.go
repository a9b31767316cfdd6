package cutover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/eventbus"
)

// Mover moves tenants. It is safe for concurrent use; moves of different
// tenants may run at once.
type Mover struct {
	cfg    Config
	events eventbus.Bus[EventKind, *Event]
}

// New returns a Mover.
func New(cfg *Config) (*Mover, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Mover{cfg: c}, nil
}

// Request asks for one tenant to move.
type Request struct {
	// ID names the move (and its stream); Resume takes it. Default: the
	// tenant ID and the start time.
	ID string
	// Tenant is the tenant's ID in the catalog.
	Tenant string
	// Target is the ID of the instance to move to. The tenant's database
	// keeps its name there.
	Target string
	// NoReverse makes this move start no reverse stream, as
	// Config.NoReverse makes every move: for a caller that retires the
	// move at once (a drain that keeps no sources), to whom a way back
	// is worth nothing and costs the window a slot.
	NoReverse bool
}

// Move moves a tenant to the target instance: preflight, stream, catch
// up, the window, the switch, and the cleanup after. Before the switch,
// any failure rolls the move back and the source serves; the error then
// wraps ErrRolledBack and the reason, and the report says so. After the
// switch it only goes forward: a failure there leaves the move open in
// the journal, and Resume completes it.
//
// A request is refused, changing nothing, when its ID is already used
// (ErrMoveIDUsed), when another move of the tenant runs
// (ErrMoveInProgress), or when the source or the target is being
// converted (ErrInstanceBusy).
func (m *Mover) Move(ctx context.Context, req Request) (*Report, error) {
	r, err := m.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	return m.runNew(ctx, r)
}

// runNew runs a prepared move or conversion under its locks.
func (m *Mover) runNew(ctx context.Context, r *run) (*Report, error) {
	if err := m.checkIDUnused(ctx, r.p.Move); err != nil {
		return nil, err
	}
	locks, err := m.lock(ctx, r.p.holder(), r.p.locks(m.cfg.MovesPerSource, m.cfg.MovesPerTarget)...)
	if err != nil {
		return nil, err
	}
	defer locks.Release()
	r.locks, r.first = locks, true
	defer r.close(ctx)
	if r.p.rehearsal() {
		err = r.rehearse(ctx)
	} else {
		err = r.forward(ctx)
	}
	r.rep.Finished = time.Now()
	return r.rep, err
}

// prepare checks the request against the catalog and routes, changing
// nothing: a bad request is refused before anything is journaled.
func (m *Mover) prepare(ctx context.Context, req Request) (*run, error) {
	fail := func(format string, args ...any) (*run, error) {
		return nil, fmt.Errorf("%w: %s", ErrPreflight, fmt.Sprintf(format, args...))
	}
	if req.Tenant == "" || req.Target == "" {
		return fail("Request needs Tenant and Target")
	}
	tenant, err := m.cfg.Catalog.Locate(ctx, req.Tenant)
	if err != nil {
		return fail("tenant: %v", err)
	}
	if tenant.Instance == req.Target {
		return fail("tenant %q is already on %q", req.Tenant, req.Target)
	}
	src, err := m.cfg.Catalog.Instance(ctx, tenant.Instance)
	if err != nil {
		return fail("source instance of tenant %q: %v", req.Tenant, err)
	}
	tgt, err := m.cfg.Catalog.Instance(ctx, req.Target)
	if err != nil {
		return fail("target: %v", err)
	}
	id := req.ID
	if id == "" {
		id = fmt.Sprintf("%s-%s", req.Tenant, time.Now().UTC().Format("20060102T150405.000"))
	}
	p := plan{Move: id, Tenant: tenant.ID, Database: tenant.Database, Source: src.ID, Target: tgt.ID,
		Verify: m.cfg.Verify, KeepStream: m.cfg.KeepStreamOnRollback, Reverse: m.reverseWanted() && !req.NoReverse}
	return m.newRun(p, []fleet.Tenant{tenant}, src, tgt), nil
}

// checkIDUnused refuses an ID that a journal already has, before anything
// is locked or journaled (the first append checks again, atomically).
func (m *Mover) checkIDUnused(ctx context.Context, id string) error {
	es, err := m.cfg.Journal.Entries(ctx, id)
	switch {
	case errors.Is(err, ErrMoveNotFound):
		return nil
	case err != nil:
		return err
	}
	return usedError(id, es[len(es)-1])
}
