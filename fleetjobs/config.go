package fleetjobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/sentinel"
)

const (
	// MoveTimeoutDefault is how long a move job may run before River
	// cancels it, and so how long River waits before it rescues the job
	// of a worker that died: cutover's CatchUpTimeoutDefault (the copy
	// and catch-up) and an hour for the window, the verification and
	// the end of the stream.
	MoveTimeoutDefault = 2 * time.Hour
	// RetireTimeoutDefault bounds a retire job: dropping one database.
	RetireTimeoutDefault = 10 * time.Minute
	// BusySnoozeDefault is how long a job whose tenant is held by another
	// mover waits before it tries again.
	BusySnoozeDefault = 30 * time.Second
	// DrainPollDefault is how often a drain or refill job looks at its
	// moves while they run, besides being woken as each one ends.
	DrainPollDefault = 5 * time.Second
	// FanOutTimeoutDefault bounds one round of a drain or refill job:
	// its planning (which measures the instances it involves) or one look
	// at its moves. The moves are jobs of their own.
	FanOutTimeoutDefault = 10 * time.Minute
	// TakeoverAfterDefault is how long a drain's move job may run
	// without its move's first journal entry before the drain takes its
	// worker for dead: well above cutover's LockWaitDefault.
	TakeoverAfterDefault = time.Minute
)

// Mover is what the workers need of a *cutover.Mover; the host's Mover is
// one, built over the same control database as the jobs' Journal.
type Mover interface {
	Move(ctx context.Context, req cutover.Request) (*cutover.Report, error)
	Resume(ctx context.Context, moveID string) (*cutover.Report, error)
	Retire(ctx context.Context, moveID string) error
	// Abandoned says whether an open move has no mover (its worker
	// died), so that a drain resumes it at once.
	Abandoned(ctx context.Context, moveID string) (bool, error)
}

// Planner plans the drains and refills that drain and refill jobs run; a
// *drain.Runner (over the host's Mover and catalog) is one.
type Planner interface {
	DryRun(ctx context.Context, instanceID string, threshold drain.Threshold, opts *drain.DrainOpts) (*drain.Plan, error)
	DryRunRefill(ctx context.Context, instanceID string, sources []string, level drain.Threshold, opts *drain.RefillOpts) (*drain.Plan, error)
}

// Config configures the workers Register adds. Mover and Journal are
// required; every other field has a documented default.
type Config struct {
	// Mover runs the moves. It is shared by every job of this process;
	// moves of different tenants run at once.
	Mover Mover
	// Journal is the journal Mover writes to (cutover.Config.Journal, a
	// PostgresJournal in the control database): a job reads its move's
	// entries there to decide whether to start, resume or do nothing.
	Journal cutover.Journal

	// MoveTimeout is the River timeout of a move job (the worker's
	// Timeout, which overrides the client's JobTimeout). It must exceed
	// the longest move, since a move cancelled before its switch rolls
	// back; and River rescues the job of a dead worker only once it has
	// run this long (and RescueStuckJobsAfter), so it is also how long
	// such a move waits to be resumed. Default MoveTimeoutDefault.
	MoveTimeout time.Duration
	// RetireTimeout is the River timeout of a retire job, and how long
	// River waits before it rescues one whose worker died. Default
	// RetireTimeoutDefault.
	RetireTimeout time.Duration
	// BusySnooze is how long a job snoozes (river.JobSnooze, which does
	// not use up an attempt) when its tenant is held by another mover
	// (cutover.ErrMoveInProgress) or an instance it needs is being
	// converted (cutover.ErrInstanceBusy). Default BusySnoozeDefault.
	BusySnooze time.Duration

	// Planner plans drains and refills. Default nil: Register adds no
	// drain or refill worker (so leave KindDrain and KindRefill jobs to a
	// process that has one).
	Planner Planner
	// FanOutTimeout is the River timeout of one round of a drain or
	// refill job (its planning, or one look at its moves), and so how
	// long River waits before it rescues one whose worker died in a
	// round. Default FanOutTimeoutDefault.
	FanOutTimeout time.Duration
	// TakeoverAfter is how long a drain's move job may run without its
	// move's first journal entry before the drain takes its worker for
	// dead and enqueues a takeover job. It must exceed the Movers'
	// LockWait, which a live mover may spend waiting for its locks before
	// it journals anything (a wrong guess costs only a second job, which
	// finds the tenant busy). A move that journaled is taken over as soon
	// as its locks are free, whatever this says. Default
	// TakeoverAfterDefault.
	TakeoverAfter time.Duration
	// DrainPoll is how often a drain or refill job looks at its moves
	// while they run (it snoozes in between, holding no worker); each
	// move job also wakes it as it ends. Default DrainPollDefault.
	DrainPoll time.Duration
	// Logger receives what each job decided (Info). Default: discarded.
	Logger *slog.Logger
}

// ErrInvalidConfig: Register was given a Config it cannot work with; the
// error names each field and what to fix, and nothing was registered. It
// is also fleet.ErrInvalid under errors.Is.
var ErrInvalidConfig = sentinel.New("fleetjobs: invalid config", fleet.ErrInvalid)

func (c *Config) validate() error {
	if c == nil {
		return fmt.Errorf("%w: nil Config: set at least Mover and Journal", ErrInvalidConfig)
	}
	var errs []error
	if c.Mover == nil {
		errs = append(errs, errors.New("Mover is required: the host's *cutover.Mover"))
	}
	if c.Journal == nil {
		errs = append(errs, errors.New("Journal is required: the journal the Mover writes to"))
	}
	// River never rescues a job whose worker has no timeout (-1): a
	// dead worker's move would stay running for ever.
	if c.MoveTimeout < 0 {
		errs = append(errs, fmt.Errorf("MoveTimeout %v is negative: set a duration longer than the longest move, or 0 for MoveTimeoutDefault (River never rescues a job without a timeout)", c.MoveTimeout))
	}
	if c.RetireTimeout < 0 {
		errs = append(errs, fmt.Errorf("RetireTimeout %v is negative: set a duration, or 0 for RetireTimeoutDefault (River never rescues a job without a timeout)", c.RetireTimeout))
	}
	if c.FanOutTimeout < 0 {
		errs = append(errs, fmt.Errorf("FanOutTimeout %v is negative: set a duration, or 0 for FanOutTimeoutDefault (River never rescues a job without a timeout)", c.FanOutTimeout))
	}
	if c.TakeoverAfter < 0 {
		errs = append(errs, fmt.Errorf("TakeoverAfter %v is negative: set a duration above the Movers' LockWait, or 0 for TakeoverAfterDefault", c.TakeoverAfter))
	}
	if c.DrainPoll < 0 {
		errs = append(errs, fmt.Errorf("DrainPoll %v is negative: set a duration, or 0 for DrainPollDefault", c.DrainPoll))
	}
	if c.BusySnooze < 0 {
		errs = append(errs, fmt.Errorf("BusySnooze %v is negative: set a duration, or 0 for BusySnoozeDefault", c.BusySnooze))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// withDefaults returns a copy of a valid c with every default filled in.
func (c *Config) withDefaults() Config {
	d := *c
	d.MoveTimeout = cmp.Or(d.MoveTimeout, MoveTimeoutDefault)
	d.RetireTimeout = cmp.Or(d.RetireTimeout, RetireTimeoutDefault)
	d.BusySnooze = cmp.Or(d.BusySnooze, BusySnoozeDefault)
	d.DrainPoll = cmp.Or(d.DrainPoll, DrainPollDefault)
	d.FanOutTimeout = cmp.Or(d.FanOutTimeout, FanOutTimeoutDefault)
	d.TakeoverAfter = cmp.Or(d.TakeoverAfter, TakeoverAfterDefault)
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}
