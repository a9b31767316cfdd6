package fleetjobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/daisychain-db/daisychain/cutover"
)

// moveState is what the journal says of a move ID, which is all a job
// decides by: the job row says nothing of how far a move got.
type moveState int

const (
	moveAbsent     moveState = iota // never started: Move it
	moveOpen                        // started and not over: Resume it
	moveDone                        // over, the tenant on the target (retired or not)
	moveRolledBack                  // over, the tenant on its source
)

func (s moveState) String() string {
	return [...]string{"absent", "open", "done", "rolled back"}[s]
}

// journalState reads the move's journal: its state and, once planned,
// what it moves. A journal of another kind (a chain's) is an error
// wrapping cutover.ErrNotAMove.
func journalState(ctx context.Context, j cutover.Journal, moveID string) (moveState, *cutover.Planned, error) {
	entries, err := j.Entries(ctx, moveID)
	if errors.Is(err, cutover.ErrMoveNotFound) {
		return moveAbsent, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read the journal of %s: %w", moveID, err)
	}
	if len(entries) == 0 {
		return moveAbsent, nil, nil
	}
	if k := entries[0].Kind; k != "" && k != cutover.KindMove {
		return 0, nil, fmt.Errorf("%w: %s is a %s", cutover.ErrNotAMove, moveID, k)
	}
	var planned *cutover.Planned
	if p, found, err := cutover.PlannedIn(moveID, entries); err != nil {
		return 0, nil, err
	} else if found {
		planned = &p
	}
	last := entries[len(entries)-1]
	switch {
	case !last.Terminal():
		return moveOpen, planned, nil
	case last.Step == cutover.StepRolledBack:
		return moveRolledBack, planned, nil
	default: // done, or retired after done
		return moveDone, planned, nil
	}
}

// checkPlanned says whether the journaled move is the one args ask for:
// a move ID reused for another tenant or target must not pass for done.
func checkPlanned(p *cutover.Planned, moveID string, args MoveArgs) error {
	switch {
	case p == nil:
		return nil // not planned yet: Resume rolls it back, Move refuses the ID
	case p.Conversion:
		return fmt.Errorf("%w: %s is a conversion", cutover.ErrNotAMove, moveID)
	case p.Tenant != args.Tenant || p.Target != args.Target:
		return fmt.Errorf("%w: the journal's %s moves %s to %s, the job asks for %s to %s",
			ErrMoveIDConflict, moveID, p.Tenant, p.Target, args.Tenant, args.Target)
	}
	return nil
}

// byJournal does what the journal says is left of a move or a
// conversion: nothing if it is done, Resume if it is open, start if the
// journal has no entry of it. One rolled back is a cancellation: a move ID
// names one attempt. A report that says rolled back is ErrRolledBack.
func byJournal(ctx context.Context, m Mover, id string, state moveState, start func() (*cutover.Report, error)) (Decision, *cutover.Report, error) {
	var (
		rep      *cutover.Report
		decision Decision
		err      error
	)
	switch state {
	case moveDone:
		return DecisionAlreadyDone, nil, nil
	case moveRolledBack:
		return "", nil, river.JobCancel(fmt.Errorf("fleetjobs: %s was rolled back (what it moved is served where it was): enqueue it with a new ID to try again", id))
	case moveOpen:
		decision = DecisionResumed
		rep, err = m.Resume(ctx, id)
	case moveAbsent:
		decision = DecisionMoved
		rep, err = start()
		if errors.Is(err, cutover.ErrMoveIDUsed) {
			// Another attempt (a job rescued while its worker still
			// ran, or a takeover) started it after we read the journal:
			// that one holds its locks, so wait as for a busy tenant.
			err = fmt.Errorf("%w: %w", cutover.ErrMoveInProgress, err)
		}
	}
	if err == nil && rep != nil && rep.RolledBack {
		err = fmt.Errorf("%w: %s", cutover.ErrRolledBack, rep.RollbackReason)
	}
	return decision, rep, err
}
