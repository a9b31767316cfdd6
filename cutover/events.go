package cutover

import (
	"time"

	"github.com/daisychain-db/daisychain/replica"
)

// EventKind says what an Event reports.
type EventKind string

// Kinds of events.
const (
	EventStepStarted  EventKind = "step_started"  // a step is about to run
	EventStepFinished EventKind = "step_finished" // a step ran; Err is set if it failed
	EventWindowOpened EventKind = "window_opened" // writes are held from now on
	EventWindowClosed EventKind = "window_closed" // writes flow again (to the target, or back to the source)
	EventRolledBack   EventKind = "rolled_back"   // the move was rolled back; Err says why
	EventProgress     EventKind = "progress"      // copy and catch-up progress, about once a second
	// EventVerifyMismatch: after the switch, the target's snapshot
	// differs from the frozen source; Err names the tables. The move is
	// not rolled back (the target serves already): see
	// Report.VerifyMismatch.
	EventVerifyMismatch EventKind = "verify_mismatch"
	// EventReverseDropped: the guard (CheckReverse) dropped a move's
	// reverse stream; Err says why. The move can no longer be reverted.
	EventReverseDropped EventKind = "reverse_dropped"
)

// Event is something that happened in a move.
type Event struct {
	Kind   EventKind
	Move   string
	Tenant string
	Step   Step
	At     time.Time
	// Elapsed is the step's duration (EventStepFinished) or the window's
	// (EventWindowClosed).
	Elapsed time.Duration
	// Progress is set on EventProgress.
	Progress *replica.Progress
	// ETA is the run's estimated time left, from its RateModel's
	// estimate revised by the steps done and the stream's progress; 0
	// for a run without an estimate (a resumed one).
	ETA time.Duration
	// Err is set on a failed step and on EventRolledBack.
	Err error
}

// Subscribe returns a channel of the mover's events of the given kinds
// (all kinds when none are given) and a function that ends the
// subscription and closes the channel. Sending never blocks: events that
// do not fit in the channel's buffer (eventbus.BufferDefault, 1024) are
// dropped, so a slow subscriber never slows a move down; EventsDropped
// counts them.
func (m *Mover) Subscribe(kinds ...EventKind) (<-chan *Event, func()) {
	return m.events.Subscribe(kinds...)
}

// EventsDropped is how many events subscribers missed because their
// channel was full, since New: each event a subscription missed counts
// once. A subscriber that must see every event reads its channel
// promptly, and can tell from this count whether it did.
func (m *Mover) EventsDropped() uint64 { return m.events.Dropped() }

func (m *Mover) emit(e *Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	m.events.Emit(e.Kind, e)
}
