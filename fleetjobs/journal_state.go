package fleetjobs

import (
	"context"
	"errors"
	"fmt"

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
