package cutover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// Defaults of Config's fields.
const (
	// WindowBudgetDefault is the figure the 4-million-database migration
	// had to meet per tenant. Set far less: a few seconds is plenty for a
	// caught-up stream.
	WindowBudgetDefault = 3 * time.Minute
	// CatchUpLagDefault is the lag under which the window opens.
	CatchUpLagDefault int64 = 1 << 20
	// CatchUpTimeoutDefault bounds the copy and catch-up before the window.
	CatchUpTimeoutDefault = time.Hour
	// LockWaitDefault bounds how long a move waits for another mover of
	// the same tenant to let go of it.
	LockWaitDefault = 10 * time.Second
	// DrainGraceDefault bounds how long in-flight work on the source may
	// take to finish once the route is paused, before the fence ends it.
	DrainGraceDefault = 2 * time.Second
)

// RouteReader reads a tenant's current route; *flags.Resolver is one.
type RouteReader interface {
	Resolve(ctx context.Context, tenantID string) (flags.Route, error)
}

// Config configures a Mover. Catalog, Publisher and Routes are required;
// every other field has a documented default.
type Config struct {
	// Catalog says where tenants live and records the move.
	Catalog fleet.Catalog
	// Publisher publishes the tenant's route (paused, then to the target).
	Publisher flags.Publisher
	// Routes reads the current route, for its epoch and to check that the
	// tenant is where the catalog says before a move.
	Routes RouteReader

	// Provider streams the tenant database. Default: &logical.Provider{}.
	Provider replica.Provider
	// Converter builds the converted replica of a whole instance, for
	// Convert. Default nil: Convert refuses (replica/physical's
	// Converter builds a local streaming standby).
	Converter replica.Converter
	// Journal records every step. Default: a new MemoryJournal, which
	// does not survive a crash of this process: use a PostgresJournal in
	// production.
	Journal Journal
	// Fences are held in order after the route is paused and released in
	// reverse. Default: DatabaseFence, the authoritative one.
	Fences []Fence
	// NoRoutePause skips pausing the route: the window is then held by
	// the fences alone, and applications see errors instead of waiting.
	// For comparisons; default false.
	NoRoutePause bool

	// WindowBudget bounds the window; over it the move rolls back.
	// Default WindowBudgetDefault.
	WindowBudget time.Duration
	// CatchUpLag is the lag (bytes of source WAL) under which the window
	// opens. Default CatchUpLagDefault.
	CatchUpLag int64
	// CatchUpTimeout bounds the stream's copy and catch-up. Default
	// CatchUpTimeoutDefault.
	CatchUpTimeout time.Duration
	// DrainGrace bounds the wait for in-flight work after the pause.
	// Default DrainGraceDefault; negative: do not wait.
	DrainGrace time.Duration
	// Verify is how the target is compared with the source inside the
	// window. Its cost grows with the tenant's size (see package replica);
	// default replica.VerifyCounts.
	Verify replica.VerifyLevel
	// KeepStreamOnRollback keeps the stream (and the target's copy)
	// running after a rollback, so a retry need not copy again. Default
	// false: the stream is aborted and its target database dropped.
	KeepStreamOnRollback bool

	// LockWait bounds how long Move and Resume wait for the tenant's lock
	// (held by the journal, for journals that can) while another mover has
	// it; then they fail with ErrMoveInProgress. A mover that crashed
	// holds it until the control database notices, within about 25 s.
	// Default LockWaitDefault; negative: do not wait.
	LockWait time.Duration

	// BeforeStep, if set, runs once a step is journaled as started and
	// before it runs. Returning an error fails the step: before the switch
	// the move rolls back. For approvals, and for tests that force
	// failures or crash a move in the middle of a step.
	BeforeStep func(ctx context.Context, moveID string, step Step) error

	// Logger receives the steps (Info) and their details (Debug).
	// Default: discarded.
	Logger *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	if c == nil {
		return Config{}, errors.New("cutover: New needs a Config with Catalog, Publisher and Routes")
	}
	out := *c
	var errs []error
	if out.Catalog == nil {
		errs = append(errs, errors.New("Catalog is nil"))
	}
	if out.Publisher == nil {
		errs = append(errs, errors.New("Publisher is nil"))
	}
	if out.Routes == nil {
		errs = append(errs, errors.New("Routes is nil"))
	}
	if out.WindowBudget < 0 || out.CatchUpLag < 0 || out.CatchUpTimeout < 0 {
		errs = append(errs, errors.New("WindowBudget, CatchUpLag and CatchUpTimeout must not be negative"))
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("cutover: invalid config: %w", errors.Join(errs...))
	}
	if out.Provider == nil {
		out.Provider = &logical.Provider{}
	}
	if out.Journal == nil {
		out.Journal = &MemoryJournal{}
	}
	if out.Fences == nil {
		out.Fences = []Fence{DatabaseFence{}}
	}
	if out.WindowBudget == 0 {
		out.WindowBudget = WindowBudgetDefault
	}
	if out.CatchUpLag == 0 {
		out.CatchUpLag = CatchUpLagDefault
	}
	if out.CatchUpTimeout == 0 {
		out.CatchUpTimeout = CatchUpTimeoutDefault
	}
	if out.LockWait == 0 {
		out.LockWait = LockWaitDefault
	}
	if out.DrainGrace == 0 {
		out.DrainGrace = DrainGraceDefault
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out, nil
}
