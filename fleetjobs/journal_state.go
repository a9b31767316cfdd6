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
	jm, err := readJournal(ctx, j, moveID)
	return jm.state, jm.planned, err
}

// journaledMove is what a move's journal says: its state, its plan (nil
// before it is planned), and its last entry (zero if absent).
type journaledMove struct {
	state   moveState
	planned *cutover.Planned
	last    cutover.Entry
}

// retired reports whether the move is done and its source retired.
func (jm journaledMove) retired() bool {
	return jm.state == moveDone && jm.last.Step == cutover.StepRetire
}

func readJournal(ctx context.Context, j cutover.Journal, moveID string) (journaledMove, error) {
	entries, err := j.Entries(ctx, moveID)
	if errors.Is(err, cutover.ErrMoveNotFound) || err == nil && len(entries) == 0 {
		return journaledMove{state: moveAbsent}, nil
	}
	if err != nil {
		return journaledMove{}, fmt.Errorf("read the journal of %s: %w", moveID, err)
	}
	if k := entries[0].Kind; k != "" && k != cutover.KindMove {
		return journaledMove{}, fmt.Errorf("%w: %s is a %s", cutover.ErrNotAMove, moveID, k)
	}
	jm := journaledMove{last: entries[len(entries)-1]}
	if p, found, err := cutover.PlannedIn(moveID, entries); err != nil {
		return journaledMove{}, err
	} else if found {
		jm.planned = &p
	}
	switch {
	case !jm.last.Terminal():
		jm.state = moveOpen
	case jm.last.Step == cutover.StepRolledBack:
		jm.state = moveRolledBack
	default: // done, or retired after done
		jm.state = moveDone
	}
	return jm, nil
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
