// Package eventbus fans events out to subscribers without ever blocking
// the sender: each subscription has a buffered channel, and an event that
// does not fit is dropped for that subscriber, and counted. cutover and
// drain expose their events through it.
package eventbus

import (
	"sync"
	"sync/atomic"
)

// BufferDefault is the buffer of a subscription's channel.
const BufferDefault = 1024

// Bus delivers events of kind K. The zero value is ready.
type Bus[K comparable, E any] struct {
	mu      sync.Mutex
	subs    map[*subscription[K, E]]struct{}
	dropped atomic.Uint64
}

type subscription[K comparable, E any] struct {
	ch    chan E
	kinds map[K]bool // empty: all
}

// Subscribe returns a channel of the events of the given kinds (all when
// none are given) and a function that ends the subscription and closes
// the channel.
func (b *Bus[K, E]) Subscribe(kinds ...K) (<-chan E, func()) {
	s := &subscription[K, E]{ch: make(chan E, BufferDefault), kinds: map[K]bool{}}
	for _, k := range kinds {
		s.kinds[k] = true
	}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*subscription[K, E]]struct{}{}
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

// Emit sends e to every subscriber of kind, dropping it for those whose
// buffer is full.
func (b *Bus[K, E]) Emit(kind K, e E) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if len(s.kinds) > 0 && !s.kinds[kind] {
			continue
		}
		select {
		case s.ch <- e:
		default:
			b.dropped.Add(1)
		}
	}
}

// Dropped is how many events were dropped, over every subscription, since
// the Bus was made: each event a full subscription missed counts once.
func (b *Bus[K, E]) Dropped() uint64 { return b.dropped.Load() }
