package cutover

import (
	"sync"
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
	// Err is set on a failed step and on EventRolledBack.
	Err error
}

// SubscribeBufferDefault is the buffer of a subscription's channel. When
// it is full, further events for that subscriber are dropped: a slow
// subscriber never slows a move down.
const SubscribeBufferDefault = 1024

type subscription struct {
	ch    chan *Event
	kinds map[EventKind]bool // empty: all
}

type broker struct {
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

// Subscribe returns a channel of the mover's events of the given kinds
// (all kinds when none are given) and a function that ends the
// subscription and closes the channel. Sending never blocks: events that
// do not fit in the buffer are dropped.
func (m *Mover) Subscribe(kinds ...EventKind) (<-chan *Event, func()) {
	s := &subscription{ch: make(chan *Event, SubscribeBufferDefault), kinds: map[EventKind]bool{}}
	for _, k := range kinds {
		s.kinds[k] = true
	}
	b := &m.events
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*subscription]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			close(s.ch)
		})
	}
}

func (b *broker) emit(e *Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if len(s.kinds) > 0 && !s.kinds[e.Kind] {
			continue
		}
		select {
		case s.ch <- e:
		default:
		}
	}
}
