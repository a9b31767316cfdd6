package cutover

import (
	"context"

	"github.com/daisychain-db/daisychain/replica"
)

// copier is the one thing in which a move and a conversion differ: what
// brings the tenants' data to the destination and keeps it level with the
// source. A move streams its tenant database (a replica.Stream); a
// conversion builds a replica of the whole instance and promotes it (a
// replica.Conversion). The run calls it at fixed points of its one step
// table; every other step is the run's, the same for both.
type copier interface {
	// startStep names the step that starts or resumes the copy.
	startStep() Step
	// start starts the copy, or resumes it, and returns what follows the
	// source.
	start(ctx context.Context) (follower, error)
	// preflight lists, read-only, what the copy needs and lacks.
	preflight(ctx context.Context) []string
	// ready opens what the window needs of the copy (the admin session
	// to a conversion's replica) and returns once the copy is connected
	// end to end; it runs right before the window opens.
	ready(ctx context.Context) error
	// leveled are the steps between the destination's catch-up to the
	// barrier and the switch; they leave r.tgt set to where the routes
	// switch.
	leveled() []stepDef
	// finished are the steps after the catalog records the switch.
	finished() []stepDef
	// spare names the source backends the fences must leave alone; nil
	// when the copy does not say (see FenceTarget.Spare).
	spare() FenceSparer
	// undo removes the copy once a rollback has the routes back on the
	// source, noting what it did or left in d.
	undo(ctx context.Context, d map[string]any) error
	// resumed sets what a journal read by Resume says of the copy.
	resumed(entries []Entry, seen map[Step]Status) error
	// close releases the handle; the copy itself stays.
	close()
}

// follower is what a replica.Stream and a replica.Conversion share: a
// copy following its source, which the window waits for.
type follower interface {
	Progress(ctx context.Context) (replica.Progress, error)
	Barrier(ctx context.Context) (replica.Position, error)
	WaitFor(ctx context.Context, pos replica.Position) error
}
