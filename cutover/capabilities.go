package cutover

import (
	"context"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// Optional capabilities. A Mover needs only the required interfaces of
// what it is given (replica.Provider and replica.Stream,
// replica.Converter, flags.Publisher, RouteReader, Journal, Fence); each
// interface below is a capability it finds by type assertion and uses
// when present. A third-party implementation implements those it can;
// what the Mover does without each is said on it. BatchFence (fence.go)
// and flags.BatchPublisher are capabilities too.

// Readier is the optional capability of a replica.Stream to say it is
// connected end to end. The run asks right before its window opens: a
// fence that refuses connections would keep a disconnected stream out
// for the whole window. Ready returns once the stream streams, or an
// error (replica.ErrNotStreaming) that rolls the move back. Without it,
// the window opens on the stream's word from catch-up. replica/logical's
// stream has it.
type Readier interface {
	Ready(ctx context.Context) error
}

// FenceSparer is the optional capability of a replica.Stream to name the
// source backends it needs inside the window (the connection it reads the
// fenced source through, its WAL senders), which a fence that ends every
// session of the source database must leave running. The PIDs change when
// the stream reconnects, so a fence asks again right before each round
// (see FenceTarget.Spare). Without it, DatabaseFence ends client
// sessions only and leaves every replication session running.
// replica/logical's stream has it.
type FenceSparer interface {
	FencePIDs(ctx context.Context) ([]uint32, error)
}

// TargetSnapshotter is the optional capability of a replica.Stream to
// hold a snapshot of the target taken inside the window, and compare it
// with the fenced source after the switch, so that verification costs
// the window nothing. Without it, a stream is verified inside the window
// (Stream.Verify), which then grows with the tenant's size.
// replica/logical's stream has it.
type TargetSnapshotter interface {
	// SnapshotTarget holds the target's state and names it.
	SnapshotTarget(ctx context.Context) (string, error)
	// VerifySnapshot compares the held state with the source at level;
	// a difference wraps replica.ErrVerifyMismatch.
	VerifySnapshot(ctx context.Context, snapshot string, level replica.VerifyLevel) error
}

// StreamAborter is the optional capability of a replica.Provider to abort
// a stream without a handle to it: a rollback after a crash. Without it,
// the Mover starts the stream again (Provider.Start resumes it) to abort
// it. replica/logical's Provider has it.
type StreamAborter interface {
	Abort(ctx context.Context, spec replica.Spec) error
}

// StreamFinisher is the optional capability of a replica.Provider to
// finish a stream without a handle to it: a move resumed after its
// switch. Without it, the Mover starts the stream again to finish it.
// replica/logical's Provider has it.
type StreamFinisher interface {
	Finish(ctx context.Context, spec replica.Spec) error
}

// ReverseMaker is the optional capability of a replica.Stream to make
// its reverse (see revert.go): the reverse's publication and slot,
// before the window (PrepareReverse), and, in the window once the target
// has applied the barrier and before the switch, where the reverse will
// start (ReverseStart: a read, which the Mover journals with the
// switch). Without it, or without ReverseProvider, a move makes no
// reverse stream and cannot be reverted. replica/logical's stream has
// it.
type ReverseMaker interface {
	PrepareReverse(ctx context.Context) error
	ReverseStart(ctx context.Context) (replica.Position, error)
}

// ReverseProvider is the optional capability of a replica.Provider to
// run the reverse of a stream, by the forward stream's spec: record where
// it starts (ReverseMaker.ReverseStart's position, after the switch and
// before the forward stream is finished; a recorded one is kept and
// returned), start (or resume) it once the forward stream is finished,
// remove it, and say how much WAL the target retains for it (exists
// false once it is gone). replica/logical's Provider has it.
type ReverseProvider interface {
	RecordReverseStart(ctx context.Context, spec replica.Spec, from replica.Position) (replica.Position, error)
	StartReverse(ctx context.Context, spec replica.Spec) (replica.Stream, error)
	AbortReverse(ctx context.Context, spec replica.Spec) error
	ReverseRetainedWAL(ctx context.Context, spec replica.Spec) (bytes int64, exists bool, err error)
}

// ConverterPreflighter is the optional capability of a replica.Converter
// to check a conversion without starting it; its problems join the
// conversion's preflight. replica/physical's Converter has it.
type ConverterPreflighter interface {
	Preflight(ctx context.Context, spec replica.ConvertSpec) (*replica.PreflightReport, error)
}

// PublishedReader is the optional capability of a flags.Publisher to read
// back the route it holds for a tenant, authoritatively (found is false
// when it holds none). Resume uses it to learn which routes a run
// published and whether a switch that was cut off went through, a
// publish that lost its acknowledgement to tell whether it committed,
// and Retire to forget a route that says what the catalog says. Without
// it, Resume takes every route as touched at the epoch Routes has, and a
// cut-off switch stays undecided (an error). flags' MemoryProvider and
// PostgresProvider have it.
type PublishedReader interface {
	Published(ctx context.Context, tenantID string) (route flags.Route, found bool, err error)
}

// BatchPublishedReader is the optional capability of a flags.Publisher to
// read back the routes of many tenants in one call: Resume of a
// conversion reads every tenant's. It returns the routes it holds, by
// tenant ID; a tenant it holds none for is absent. Without it, Published
// is called tenant by tenant, several at a time.
type BatchPublishedReader interface {
	PublishedMany(ctx context.Context, tenantIDs []string) (map[string]flags.Route, error)
}

// BatchRouteReader is the optional capability of a RouteReader to resolve
// the routes of many tenants in one call: the preflight of a conversion
// reads every tenant's. It returns one route per ID, in their order, as
// Resolve would; an error fails them all. Without it, Resolve is called
// tenant by tenant, several at a time.
type BatchRouteReader interface {
	ResolveMany(ctx context.Context, tenantIDs []string) ([]flags.Route, error)
}

// Locker is the optional capability of a Journal to hold locks across
// processes while a move, a conversion or a chain runs, so that two
// movers never act on one tenant at once, and no move touches an
// instance being converted. Without it, nothing is locked: run one mover
// at a time. Both journals of this package have it.
type Locker interface {
	// TryLock takes every lock, or none, at once: a refusal is a
	// *LockConflictError. holder names the taker in conflicts.
	TryLock(ctx context.Context, holder string, locks ...Lock) (HeldLocks, error)
}

// LockInspector is the optional capability of a Locker to say which locks
// anyone holds, without taking them or opening a session: Mover.Abandoned
// asks it, once per move a coordinator checks. Without it, Abandoned takes
// the locks and lets go at once, on a session of its own. Both journals of
// this package have it.
type LockInspector interface {
	// Held reports, for each lock in order, whether anyone holds it (in
	// any mode); a counting lock, whether any of its slots is held.
	Held(ctx context.Context, locks ...Lock) ([]bool, error)
}

// Checked at compile time: the built-in implementations keep the
// capabilities the docs above say they have.
var (
	_ Locker          = (*MemoryJournal)(nil)
	_ Locker          = (*PostgresJournal)(nil)
	_ LockInspector   = (*MemoryJournal)(nil)
	_ LockInspector   = (*PostgresJournal)(nil)
	_ PublishedReader = (*flags.MemoryProvider)(nil)
	_ PublishedReader = (*flags.PostgresProvider)(nil)
	_ StreamAborter   = (*logical.Provider)(nil)
	_ StreamFinisher  = (*logical.Provider)(nil)
	_ ReverseProvider = (*logical.Provider)(nil)
)
