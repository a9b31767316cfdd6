package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/idcheck"
	"github.com/daisychain-db/daisychain/internal/sentinel"
)

// Sentinel errors callers branch on with errors.Is. The errors that wrap
// them say what happened and what to do.
var (
	// ErrInvalidSpec: a Spec field is missing or malformed; the error
	// names the field. It is also fleet.ErrInvalid under errors.Is.
	ErrInvalidSpec = sentinel.New("replica: invalid spec", fleet.ErrInvalid)
	// ErrPreflight: preflight found problems; nothing was changed. The
	// error lists every problem (see PreflightReport).
	ErrPreflight = errors.New("replica: preflight failed")
	// ErrSchemaDrift: the source schema changed since the stream started
	// (DDL ran on the source); the error names the objects.
	ErrSchemaDrift = errors.New("replica: source schema changed since the stream started")
	// ErrVerifyMismatch: the target differs from the source; the error
	// names the tables.
	ErrVerifyMismatch = errors.New("replica: target differs from source")
	// ErrWALLimit: the source retained more WAL for the stream than
	// Spec.MaxRetainedWAL allows, so the stream was aborted to protect the
	// source's disk: its replication objects are dropped, its target
	// database stays until Abort.
	ErrWALLimit = errors.New("replica: retained WAL limit reached, stream aborted")
	// ErrSlotLost: the stream's replication slot disappeared from the
	// source, or the source invalidated it (pg_replication_slots.wal_status
	// = 'lost': it retained more than max_slot_wal_keep_size): changes
	// are lost, so the stream cannot go on. Abort it and start again.
	ErrSlotLost = errors.New("replica: replication slot lost")
	// ErrNotStreaming: the stream is not connected end to end: no WAL
	// sender on the source serves its slot to the target (the target
	// cannot reach the source, or the source refuses it, as a fence with
	// ALLOW_CONNECTIONS false does after a restart). Waiting would hold
	// writes for nothing: roll back, or let it reconnect and try again.
	ErrNotStreaming = errors.New("replica: the stream is not connected to the source")
	// ErrClosed: the stream was finished, aborted or closed.
	ErrClosed = errors.New("replica: stream is closed")
	// ErrNotReady: the operation needs the initial copy to be complete.
	ErrNotReady = errors.New("replica: initial copy not complete")
)

// Position is a place in the source's write-ahead log (a PostgreSQL LSN).
type Position uint64

// String formats the position as PostgreSQL does ("16/B374D848").
func (p Position) String() string { return fmt.Sprintf("%X/%X", uint64(p)>>32, uint32(p)) }

// ParsePosition parses PostgreSQL's text form of an LSN.
func ParsePosition(s string) (Position, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil || !strings.Contains(s, "/") {
		return 0, fmt.Errorf("replica: %q is not an LSN", s)
	}
	return Position(uint64(hi)<<32 | uint64(lo)), nil
}

// Spec describes one stream. ID identifies it: Start with the ID of a
// stream that exists resumes it.
type Spec struct {
	// ID identifies the stream. The names of the replication objects
	// (publication, slot, subscription) are derived from it. 1 to 200
	// bytes, no control characters.
	ID string

	// Source is an admin connection string (URL or key=value) to the
	// source server; the database it names is irrelevant, SourceDatabase
	// is used. It holds secrets: it is never printed or logged.
	Source string
	// SourceDatabase is the tenant database on the source.
	SourceDatabase string
	// SourceForTarget, if set, is the connection string the target
	// server uses to reach the source (the subscription's connection),
	// for when the target sees the source under another address. Default:
	// Source with SourceDatabase. Its database is replaced by
	// SourceDatabase.
	SourceForTarget string

	// Target is an admin connection string to the target server, naming
	// a database that exists (such as "postgres"): the target database
	// may not exist yet. Never printed or logged.
	Target string
	// TargetDatabase is the tenant database on the target; created when
	// absent. It may be on the same server as the source under another
	// name.
	TargetDatabase string

	Options
}

// Options are the optional parts of a Spec; the zero value is the safe
// default.
type Options struct {
	// AllowLargeObjects lets a database with large objects be streamed.
	// Large objects are not replicated: they are missing on the target.
	AllowLargeObjects bool
	// SetReplicaIdentityFull sets REPLICA IDENTITY FULL on the source
	// tables that have no replica identity (no primary key), instead of
	// refusing them. This changes the source and makes updates and
	// deletes of those tables log whole rows.
	SetReplicaIdentityFull bool
	// SkipUnlogged streams a database with unlogged tables, which
	// logical replication does not copy: they are created empty on the
	// target, and Verify leaves them out. Without it, preflight refuses
	// them.
	SkipUnlogged bool
	// NoOwner restores the schema without owners and privileges (owned by
	// the target admin), for targets that lack the source's roles.
	NoOwner bool
	// MaxRetainedWAL bounds the WAL (bytes) the source may retain for the
	// stream's slot; the stream is aborted with ErrWALLimit before it is
	// passed (at 90%). 0 means MaxRetainedWALDefault; negative disables
	// the guard.
	MaxRetainedWAL int64
	// LongTransactionLimit: preflight refuses to start while a
	// transaction that has written has been open on the source server for
	// longer (any database: creating the stream's replication slots waits
	// for every such transaction to end, which stalls the initial copy).
	// 0 means LongTransactionLimitDefault.
	LongTransactionLimit time.Duration
	// WaitForLongTransactions starts the stream despite such
	// transactions: the copy waits until they end, and Progress.Blockers
	// names them meanwhile.
	WaitForLongTransactions bool
	// AllowUnboundedSlotWAL lets a stream start on a source whose
	// max_slot_wal_keep_size is -1 (unlimited). Without it, preflight
	// refuses such a source: the stream's WAL guard runs only while this
	// process does, and if the target stalls after it died, the slot keeps
	// WAL until the source's disk is full. With a bound, the source
	// invalidates the slot instead, and the stream fails with ErrSlotLost.
	AllowUnboundedSlotWAL bool
	// Logger receives progress messages. Default: discarded.
	Logger *slog.Logger
}

// MaxRetainedWALDefault is the retained-WAL limit when
// Options.MaxRetainedWAL is 0.
const MaxRetainedWALDefault int64 = 8 << 30

// LongTransactionLimitDefault is Options.LongTransactionLimit when 0.
const LongTransactionLimitDefault = time.Minute

// Validate checks the fields every provider needs.
func (s Spec) Validate() error {
	var errs []error
	if err := idcheck.Check("ID", s.ID); err != nil {
		errs = append(errs, fmt.Errorf("%w: %v", ErrInvalidSpec, err))
	}
	if s.Source == "" {
		errs = append(errs, fmt.Errorf("%w: Source connection string is empty", ErrInvalidSpec))
	}
	if s.Target == "" {
		errs = append(errs, fmt.Errorf("%w: Target connection string is empty", ErrInvalidSpec))
	}
	if s.LongTransactionLimit < 0 {
		errs = append(errs, fmt.Errorf("%w: LongTransactionLimit %s is negative", ErrInvalidSpec, s.LongTransactionLimit))
	}
	for _, f := range []struct{ name, v string }{{"SourceDatabase", s.SourceDatabase}, {"TargetDatabase", s.TargetDatabase}} {
		if f.v == "" || len(f.v) > 63 || strings.ContainsRune(f.v, 0) {
			errs = append(errs, fmt.Errorf("%w: %s %q must be 1 to 63 bytes without NUL", ErrInvalidSpec, f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// String describes the spec without secrets.
func (s Spec) String() string {
	return fmt.Sprintf("stream %q (%q -> %q)", s.ID, s.SourceDatabase, s.TargetDatabase)
}

// LogValue keeps the connection strings out of structured logs.
func (s Spec) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", s.ID), slog.String("source_db", s.SourceDatabase),
		slog.String("target_db", s.TargetDatabase))
}

// Phase is where a stream is.
type Phase string

// Phases, in order.
const (
	PhaseSchema    Phase = "schema"    // copying the schema (tables, primary keys)
	PhaseCopy      Phase = "copy"      // initial data copy; changes are captured meanwhile
	PhaseIndexes   Phase = "indexes"   // building the remaining indexes, constraints, triggers
	PhaseStreaming Phase = "streaming" // target complete, applying changes as they come
	PhaseFinished  Phase = "finished"  // Finish: replication objects dropped, target independent
	PhaseAborted   Phase = "aborted"   // Abort (or the WAL guard): replication objects dropped
)

// Progress is a snapshot of a stream's state.
type Progress struct {
	Phase Phase
	// TablesDone of TablesTotal have finished their initial copy.
	TablesDone, TablesTotal int
	// BytesCopied of BytesTotal (table heap sizes on the source) have been
	// copied.
	BytesCopied, BytesTotal int64
	// RowsCopied by the initial copy, when the stream counts them (0
	// when it does not).
	RowsCopied int64
	// Phases this handle has finished, in order, with how long each took
	// as the stream measured it; empty when it does not measure them. A
	// resumed handle lists the phases since it was resumed.
	Phases []PhaseTiming
	// CopyETA estimates the time until the initial copy is done (0 when
	// done or unknown).
	CopyETA time.Duration
	// LagBytes is how much of the source's WAL the target has not yet
	// confirmed; CatchUpETA estimates when it will be 0 at the current
	// pace (0 when caught up or unknown).
	LagBytes   int64
	CatchUpETA time.Duration
	// RetainedWALBytes is the WAL the source keeps for the stream; the
	// guard aborts the stream before it passes MaxRetainedWAL.
	RetainedWALBytes int64
	// ApplyErrors counts errors of the target's apply and copy workers
	// (they retry; a growing count needs attention: see the target's log).
	ApplyErrors int64
	// Elapsed since this handle was started or resumed.
	Elapsed time.Duration
	// Err is the error that stopped the stream in the background (such
	// as ErrWALLimit), if any. It is reported as soon as it happens; the
	// phase says PhaseAborted once the WAL guard has also dropped the
	// subscription and the slots.
	Err error
	// Blockers are the sessions on the source that the stream waits for:
	// transactions that were open when its replication slots were
	// created. The copy goes on once they end; end them to let it.
	Blockers []Blocker
}

// PhaseTiming is how long a stream spent in one of its phases.
type PhaseTiming struct {
	Phase    Phase         `json:"phase"`
	Duration time.Duration `json:"duration_ns"`
}

// Blocker is a transaction on the source that holds a stream up.
type Blocker struct {
	// PID is the session's backend; 0 for a prepared transaction
	// (pg_prepared_xacts), whose GID is in Application.
	PID         int
	Database    string
	Application string
	// State is pg_stat_activity.state, such as "idle in transaction".
	State string
	// Age is how long the transaction has been open.
	Age time.Duration
}

func (b Blocker) String() string {
	if b.PID == 0 {
		return fmt.Sprintf("%s in database %q (open %s)", b.Application, b.Database, b.Age.Round(time.Second))
	}
	return fmt.Sprintf("pid %d in database %q (application %q, %s, transaction open %s)",
		b.PID, b.Database, b.Application, b.State, b.Age.Round(time.Second))
}

// VerifyLevel says how thoroughly Verify compares source and target.
type VerifyLevel int

// Verify levels.
const (
	// VerifyCounts compares the row count per table. It is the zero
	// value, so a config that says nothing verifies counts.
	VerifyCounts VerifyLevel = iota
	// VerifyChecksums compares the row count and an order-independent
	// checksum of all rows per table.
	VerifyChecksums
	// VerifyOff compares nothing.
	VerifyOff
)

func (l VerifyLevel) String() string {
	switch l {
	case VerifyOff:
		return "off"
	case VerifyCounts:
		return "counts"
	case VerifyChecksums:
		return "checksums"
	}
	return fmt.Sprintf("VerifyLevel(%d)", int(l))
}

// MarshalText writes the level's name, so reports and journals say
// "counts" rather than a number.
func (l VerifyLevel) MarshalText() ([]byte, error) {
	if l < VerifyCounts || l > VerifyOff {
		return nil, fmt.Errorf("replica: unknown %s", l)
	}
	return []byte(l.String()), nil
}

// UnmarshalText reads a level's name.
func (l *VerifyLevel) UnmarshalText(b []byte) error {
	for v := VerifyCounts; v <= VerifyOff; v++ {
		if v.String() == string(b) {
			*l = v
			return nil
		}
	}
	return fmt.Errorf("replica: unknown verify level %q (want counts, checksums or off)", b)
}

// Stream is one running replication from a source to a target. Its
// methods are safe for concurrent use.
type Stream interface {
	// ID is the Spec's ID.
	ID() string
	// Progress reports the copy and the lag.
	Progress(ctx context.Context) (Progress, error)
	// Barrier returns the source's WAL position now. Taken after the
	// source is fenced, every write committed on the source is before it.
	Barrier(ctx context.Context) (Position, error)
	// WaitFor returns once the target has applied and made durable every
	// change up to pos and its schema is complete (indexes and
	// constraints built), or when ctx ends.
	WaitFor(ctx context.Context, pos Position) error
	// SyncSequences copies every sequence's value and is_called from the
	// source to the target. Call it after the fence.
	SyncSequences(ctx context.Context) error
	// Verify compares source and target per table at the given level; a
	// difference is ErrVerifyMismatch naming the tables. Call it after
	// the fence and WaitFor.
	Verify(ctx context.Context, level VerifyLevel) error
	// CheckSchema compares the source schema with the fingerprint taken
	// when the stream started: DDL in between is ErrSchemaDrift naming
	// the objects.
	CheckSchema(ctx context.Context) error
	// Finish drops the subscription, slot and publication: the target is
	// independent. The source is untouched otherwise.
	Finish(ctx context.Context) error
	// Abort drops the subscription, slot and publication, and the target
	// database if this stream created it. The source is untouched
	// otherwise. Calling it again, or after Finish's cleanup failed, does
	// the rest.
	Abort(ctx context.Context) error
	// Close releases this handle (background work, connections) and
	// leaves the replication running: Start with the same ID resumes it.
	Close() error
}

// Provider starts streams.
type Provider interface {
	// Start starts the stream described by spec, or resumes it when one
	// with spec.ID exists. It runs Preflight first (for a new stream) and
	// fails with ErrPreflight, changing nothing, when it finds problems.
	Start(ctx context.Context, spec Spec) (Stream, error)
	// Preflight checks that spec can be started, changing nothing.
	Preflight(ctx context.Context, spec Spec) (*PreflightReport, error)
}

// Problem is one thing preflight found that prevents a stream.
type Problem struct {
	// Check names the check ("wal_level", "replica identity", ...).
	Check string
	// Message says what is wrong and what to do about it.
	Message string
}

func (p Problem) String() string { return p.Check + ": " + p.Message }

// PreflightReport lists every problem preflight found, and notes that do
// not prevent the stream (such as tables that will get REPLICA IDENTITY
// FULL).
type PreflightReport struct {
	Problems []Problem
	Notes    []string
}

// OK reports whether there are no problems.
func (r *PreflightReport) OK() bool { return len(r.Problems) == 0 }

// Err returns nil when there are no problems, or an error wrapping
// ErrPreflight that lists them all.
func (r *PreflightReport) Err() error {
	if r.OK() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problem(s):", len(r.Problems))
	for _, p := range r.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return fmt.Errorf("%w: %s", ErrPreflight, b.String())
}

// Add records a problem.
func (r *PreflightReport) Add(check, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Check: check, Message: fmt.Sprintf(format, args...)})
}
