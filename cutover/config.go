package cutover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/sentinel"
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
	// QuiesceGraceDefault bounds how long in-flight work on the source may
	// take to finish once the route is paused, before the fence ends it.
	QuiesceGraceDefault = 2 * time.Second
	// QuietSpellDefault is the quiet spell that ends the quiesce step early.
	QuietSpellDefault = 15 * time.Millisecond
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
	// reverse. Default: DatabaseFence, the authoritative one. The journal
	// records which went up, so Resume releases those, not the ones
	// configured then (a fence of another kind than the built-in ones is
	// found again by its Name).
	Fences []Fence
	// NoRoutePause skips pausing the routes: the window is then held by
	// the fences alone, and applications see errors instead of waiting.
	// Set it when the tenants' applications do not connect through a
	// flags.Router (they read routes some other way, or connect to the
	// instance directly): nothing of theirs waits on a paused route, so
	// the pause would only add a publish to the window, and the quiesce step
	// would wait for a quiet spell that a client writing without a
	// break never leaves (it ends at the first moment nothing runs
	// instead). Their in-flight statements fail at the fence and must
	// be retried, as after any failover. Default false.
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
	// QuiesceGrace bounds the wait for in-flight work after the pause; it
	// is part of the window, so it must be shorter than WindowBudget.
	// Default QuiesceGraceDefault, or half of WindowBudget if that is
	// shorter; negative: do not wait.
	QuiesceGrace time.Duration
	// QuietSpell: the quiesce step ends before QuiesceGrace once no client session
	// of the source databases has been starting, in a transaction or
	// running a statement for this long. It must exceed the longest time
	// an application takes between Router.Acquire and its first
	// statement: work the Router let through just before it saw the
	// pause is invisible to the database until that statement arrives,
	// and a fence that came first would fail it. Default
	// QuietSpellDefault, which a host that is not starved of CPU meets;
	// raise it for one that is (a test under the race detector on a
	// loaded machine). It adds to every window; at QuiesceGrace or more,
	// every quiesce step lasts QuiesceGrace.
	QuietSpell time.Duration
	// Verify is how a moved tenant's target is compared with its source:
	// replica.VerifyCounts (the default), VerifyChecksums or VerifyOff.
	// Its cost grows with the tenant's size (see package replica), but
	// not the window's: the window only takes a snapshot of the target,
	// compared with the fenced source after the switch (a mismatch is
	// reported, see Report.VerifyMismatch). A stream that cannot take
	// snapshots (replica/logical can) is verified inside the window.
	Verify replica.VerifyLevel
	// KeepStreamOnRollback keeps the stream (and the target's copy)
	// running after a rollback, so a retry need not copy again. Default
	// false: the stream is aborted and its target database dropped.
	KeepStreamOnRollback bool
	// NoReverse makes a move end its streams at the switch: no reverse
	// stream carries the target's writes back to the source copy, so
	// Revert refuses the move (see revert.go). A Resume by a Mover with
	// NoReverse ends a switched move that has not started its reverse
	// stream without one (removing what it made of it): the way out when
	// the reverse cannot start. Default false: a move of a tenant whose
	// Provider can (ReverseProvider, replica/logical's) starts the
	// reverse stream after its switch, and Retire ends it.
	NoReverse bool
	// MaxReverseWAL bounds the WAL (bytes) a target may retain for a
	// move's reverse slot: over it, CheckReverse (and Revert, which
	// checks first) drops the reverse stream, with EventReverseDropped,
	// and Revert then refuses, saying why. The target's own
	// max_slot_wal_keep_size bounds it too, in the server. 0 means
	// replica.MaxRetainedWALDefault; negative disables the guard.
	MaxReverseWAL int64

	// LockWait bounds how long Move, Convert and Resume wait for their
	// locks (held by the journal, for journals that can: the tenant's,
	// and the instances') while another mover has them; then they fail
	// with ErrMoveInProgress or ErrInstanceBusy, naming the holder. A
	// mover whose host died holds them until the control database
	// notices, within LockOrphanTimeout. Default LockWaitDefault;
	// negative: do not wait.
	LockWait time.Duration

	// MovesPerSource is how many moves may run out of one instance at
	// once, and MovesPerTarget how many into one: a move past either
	// waits for a slot like a lock held elsewhere (LockWait), then fails
	// with ErrInstanceBusy. The slots are locks of the journal, so with a
	// PostgresJournal they hold across every process that shares the
	// control database (set the same limits in each: slots are numbered,
	// and a mover allowed N takes one of the first N). A slot goes with
	// the move's lock session: at once when a mover's process dies. A
	// Resume takes none (it finishes a move that had one), nor does a
	// conversion (it has its instances to itself). Default 0: no limit;
	// an in-process drain.Runner is bounded by its Concurrency instead.
	MovesPerSource int
	MovesPerTarget int

	// BeforeStep, if set, runs once a step is journaled as started and
	// before it runs. Returning an error fails the step: before the switch
	// the move rolls back. For approvals, and for tests that force
	// failures or crash a move in the middle of a step.
	BeforeStep func(ctx context.Context, moveID string, step Step) error

	// Logger receives the steps (Info) and their details (Debug).
	// Default: discarded.
	Logger *slog.Logger
}

// ErrInvalidConfig: New was given a Config it cannot work with; the error
// names each field and what to fix. It is also fleet.ErrInvalid under
// errors.Is.
var ErrInvalidConfig = sentinel.New("cutover: invalid config", fleet.ErrInvalid)

func (c *Config) withDefaults() (Config, error) {
	if c == nil {
		return Config{}, fmt.Errorf("%w: New needs a Config with Catalog, Publisher and Routes", ErrInvalidConfig)
	}
	out := *c
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if out.Catalog == nil {
		bad("Catalog is nil: set the fleet.Catalog the tenants are in")
	}
	if out.Publisher == nil {
		bad("Publisher is nil: set the flags.Publisher of the routes")
	}
	if out.Routes == nil {
		bad("Routes is nil: set a RouteReader (a *flags.Resolver)")
	}
	if _, err := out.Verify.MarshalText(); err != nil {
		bad("Verify is %d: use replica.VerifyCounts, replica.VerifyChecksums or replica.VerifyOff", int(out.Verify))
	}
	if out.WindowBudget < 0 {
		bad("WindowBudget is %s: it must not be negative (0 means %s)", out.WindowBudget, WindowBudgetDefault)
	}
	if out.CatchUpLag < 0 {
		bad("CatchUpLag is %d: it must not be negative (0 means %d bytes)", out.CatchUpLag, CatchUpLagDefault)
	}
	if out.CatchUpTimeout < 0 {
		bad("CatchUpTimeout is %s: it must not be negative (0 means %s)", out.CatchUpTimeout, CatchUpTimeoutDefault)
	}
	for i, f := range out.Fences {
		if f == nil {
			bad("Fences[%d] is nil: remove it", i)
		} else if _, err := recordFences([]Fence{f}, nil); err != nil {
			bad("Fences[%d]: %v", i, err)
		}
	}
	if out.MovesPerSource < 0 || out.MovesPerTarget < 0 {
		bad("MovesPerSource is %d and MovesPerTarget %d: neither may be negative (0 means no limit)", out.MovesPerSource, out.MovesPerTarget)
	}
	if out.QuietSpell < 0 {
		bad("QuietSpell is %s: it must not be negative (0 means %s)", out.QuietSpell, QuietSpellDefault)
	}
	if budget := cmp.Or(out.WindowBudget, WindowBudgetDefault); out.QuiesceGrace >= budget && budget > 0 {
		bad("QuiesceGrace (%s) must be shorter than WindowBudget (%s), which it is part of: lower QuiesceGrace or raise WindowBudget", out.QuiesceGrace, budget)
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
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
	out.WindowBudget = cmp.Or(out.WindowBudget, WindowBudgetDefault)
	out.CatchUpLag = cmp.Or(out.CatchUpLag, CatchUpLagDefault)
	out.CatchUpTimeout = cmp.Or(out.CatchUpTimeout, CatchUpTimeoutDefault)
	out.LockWait = cmp.Or(out.LockWait, LockWaitDefault)
	if out.QuiesceGrace == 0 {
		out.QuiesceGrace = min(QuiesceGraceDefault, out.WindowBudget/2)
	}
	out.QuietSpell = cmp.Or(out.QuietSpell, QuietSpellDefault)
	out.MaxReverseWAL = cmp.Or(out.MaxReverseWAL, replica.MaxRetainedWALDefault)
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out, nil
}
