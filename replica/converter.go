package replica

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/idcheck"
)

// PhasePromoted is where a Conversion is after Promote: the replica is an
// independent primary. A conversion goes PhaseCopy (base backup),
// PhaseStreaming (replaying the source's WAL), then PhasePromoted or
// PhaseAborted.
const PhasePromoted Phase = "promoted"

// ConvertSpec describes one conversion: a replica of a whole source
// instance. ID identifies it: Start with the ID of a conversion that
// exists resumes it.
type ConvertSpec struct {
	// ID identifies the conversion; the names of what it creates (such
	// as a replication slot on the source) are derived from it. 1 to 200
	// bytes, no control characters.
	ID string
	// Source is an admin connection string (URL or key=value) to the
	// source instance, for a role with REPLICATION (or a superuser). It
	// holds secrets: it is never printed or logged.
	Source string
	// Logger receives progress messages. Default: discarded.
	Logger *slog.Logger
}

// Validate checks the fields every converter needs.
func (s ConvertSpec) Validate() error {
	if err := idcheck.Check("ID", s.ID); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	if s.Source == "" {
		return fmt.Errorf("%w: Source connection string is empty", ErrInvalidSpec)
	}
	return nil
}

// String describes the spec without secrets.
func (s ConvertSpec) String() string { return fmt.Sprintf("conversion %q", s.ID) }

// LogValue keeps the connection string out of structured logs.
func (s ConvertSpec) LogValue() slog.Value { return slog.GroupValue(slog.String("id", s.ID)) }

// Converter builds converted replicas of whole instances. See the package
// documentation for what an implementation must do.
type Converter interface {
	// Start starts building a replica of spec.Source, or resumes the
	// conversion with spec.ID when one exists. It checks what the
	// conversion needs first and fails with ErrPreflight, changing
	// nothing, when something is missing. The copy goes on in the
	// background; Progress reports it.
	Start(ctx context.Context, spec ConvertSpec) (Conversion, error)
}

// Conversion is one replica of a whole instance, being built, following
// its source, or promoted. Its methods are safe for concurrent use. The
// cutover of a conversion is: wait until Progress shows a small lag, fence
// every tenant database of the source, Barrier, WaitFor the barrier,
// Promote, route the tenants to Endpoint.
type Conversion interface {
	// ID is the spec's ID.
	ID() string
	// Progress reports the copy (BytesCopied of BytesTotal, CopyETA) and
	// then LagBytes: the source's WAL the replica has not replayed, and
	// RetainedWALBytes: the WAL the source keeps for the replica. Table
	// counts are zero: a replica copies files, not tables.
	Progress(ctx context.Context) (Progress, error)
	// Barrier returns a position of the source's WAL that is after every
	// transaction committed before the call. Taken after the fence,
	// nothing committed on the source is after it.
	Barrier(ctx context.Context) (Position, error)
	// WaitFor returns once the replica has replayed the source's WAL up
	// to pos, durably, or when ctx ends. Before the copy is done it waits
	// for the copy.
	WaitFor(ctx context.Context, pos Position) error
	// Promote makes the replica an independent primary that accepts
	// writes, and stops the source from keeping WAL for it. It refuses
	// (ErrNotReady) unless WaitFor succeeded on this handle: call it
	// after the fence and WaitFor(Barrier). WAL the replica had not
	// replayed is not on it. Promote again after a partial failure does
	// the rest. The source is untouched otherwise.
	Promote(ctx context.Context) error
	// Abort stops the copy or the replica, removes the replica and what
	// the conversion created on the source. The source is untouched
	// otherwise. Calling it again does what is left.
	Abort(ctx context.Context) error
	// Endpoint is where applications reach the replica once it is
	// promoted; zero until the copy is done.
	Endpoint() fleet.Endpoint
	// AdminConnString connects to the replica with the source's admin
	// credentials (the replica's roles are the source's); "" until the
	// copy is done. It holds secrets: never print it.
	AdminConnString() string
}
