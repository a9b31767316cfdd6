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

// journalState reads the move's journal. A journal of another kind (a
// chain's) is an error wrapping cutover.ErrNotAMove.
func journalState(ctx context.Context, j cutover.Journal, moveID string) (moveState, error) {
	entries, err := j.Entries(ctx, moveID)
	if errors.Is(err, cutover.ErrMoveNotFound) {
		return moveAbsent, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the journal of %s: %w", moveID, err)
	}
	if len(entries) == 0 {
		return moveAbsent, nil
	}
	if k := entries[0].Kind; k != "" && k != cutover.KindMove {
		return 0, fmt.Errorf("%w: %s is a %s", cutover.ErrNotAMove, moveID, k)
	}
	last := entries[len(entries)-1]
	switch {
	case !last.Terminal():
		return moveOpen, nil
	case last.Step == cutover.StepRolledBack:
		return moveRolledBack, nil
	default: // done, or retired after done
		return moveDone, nil
	}
}
