package pgbouncer

import "time"

// EventKind says what an Event reports.
type EventKind string

// Kinds of Follower events.
const (
	// EventPaused: Databases were PAUSEd, because their routes are
	// paused.
	EventPaused EventKind = "paused"
	// EventReloaded: File was rewritten and PgBouncer RELOADed it, and
	// SHOW DATABASES shows the new entries; Databases are the entries
	// that changed (added, moved or removed).
	EventReloaded EventKind = "reloaded"
	// EventResumed: Databases were RESUMEd: their routes are unpaused,
	// and PgBouncer's entries point where they do.
	EventResumed EventKind = "resumed"
	// EventSynced: a round ended with PgBouncer level with the routes of
	// every tenant it read (Tenants of them).
	EventSynced EventKind = "synced"
	// EventFailed: a round failed; Err says why. Run tries again, with
	// backoff.
	EventFailed EventKind = "failed"
)

// Event is something a Follower did or met.
type Event struct {
	Kind EventKind
	// Databases are the PgBouncer databases concerned, sorted.
	Databases []string
	// Tenants is how many tenants' routes the round read.
	Tenants int
	// Err is why a round failed (EventFailed).
	Err error
	At  time.Time
}

// Subscribe returns a channel of the Follower's events of the given
// kinds (all kinds when none are given) and a function that ends the
// subscription and closes the channel. Sending never blocks: events that
// do not fit in the channel's buffer (1024) are dropped, so a slow
// subscriber never holds PgBouncer's clients.
func (f *Follower) Subscribe(kinds ...EventKind) (<-chan *Event, func()) {
	return f.events.Subscribe(kinds...)
}

func (f *Follower) emit(e *Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	f.events.Emit(e.Kind, e)
}
