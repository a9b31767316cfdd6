package drain

import (
	"time"
)

// eta follows a run's moves for the ETA of its progress events. Moves
// start in plan order. Not safe for concurrent use: execute holds its
// lock.
type eta struct {
	moves []Move
	slots int
	// started counts the moves started; running holds when each running
	// one (by index) started.
	started int
	running map[int]time.Time
	// estimated and took sum the estimates and the times of the moves
	// done, for the pace.
	estimated, took time.Duration
}

func newETA(moves []Move, slots int) *eta {
	return &eta{moves: moves, slots: max(slots, 1), running: map[int]time.Time{}}
}

func (e *eta) start(i int, at time.Time) {
	e.started = max(e.started, i+1)
	e.running[i] = at
}

// finish ends move i; a move that succeeded counts in the pace.
func (e *eta) finish(i int, at time.Time, ok bool) {
	if ok {
		e.estimated += e.moves[i].Estimate
		e.took += at.Sub(e.running[i])
	}
	delete(e.running, i)
}

// left is the time left at now: what remains of each running move's
// estimate on its slot, then the moves not started on the slots as they
// free, each estimate scaled by the pace of the moves done so far (their
// time over their estimates; 1 before any is done).
func (e *eta) left(now time.Time) time.Duration {
	pace := 1.0
	if e.estimated > 0 {
		pace = float64(e.took) / float64(e.estimated)
	}
	paced := func(m *Move) time.Duration { return time.Duration(float64(m.Estimate) * pace) }
	slots := make([]time.Duration, e.slots)
	k := 0
	for i, at := range e.running {
		if k < len(slots) {
			slots[k] = max(paced(&e.moves[i])-now.Sub(at), 0)
			k++
		}
	}
	return schedule(slots, e.moves[e.started:], paced)
}
