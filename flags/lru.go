package flags

import "container/list"

// lru is a map of at most max entries that drops the least recently used
// beyond that: what bounds every per-tenant memory of a provider and a
// Resolver to the tenants a process serves now, not to every tenant it
// ever served. It is not safe for concurrent use: its owner locks.
type lru[K comparable, V any] struct {
	max       int // <= 0: unbounded
	entries   map[K]*list.Element
	order     list.List // of *lruEntry[K, V]; front: most recently used
	evictions int64
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, entries: map[K]*list.Element{}}
}

// get returns the value of k and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	e, ok := c.entries[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

// peek returns the value of k without marking it used.
func (c *lru[K, V]) peek(k K) (V, bool) {
	e, ok := c.entries[k]
	if !ok {
		var zero V
		return zero, false
	}
	return e.Value.(*lruEntry[K, V]).val, true
}

// put sets the value of k, marks it used, and drops the least recently
// used entries beyond max.
func (c *lru[K, V]) put(k K, v V) {
	if e, ok := c.entries[k]; ok {
		e.Value.(*lruEntry[K, V]).val = v
		c.order.MoveToFront(e)
		return
	}
	c.entries[k] = c.order.PushFront(&lruEntry[K, V]{k, v})
	for c.max > 0 && c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.entries, old.Value.(*lruEntry[K, V]).key)
		c.evictions++
	}
}

// replace sets the value of k if it is held, without marking it used,
// and reports whether it was.
func (c *lru[K, V]) replace(k K, v V) bool {
	e, ok := c.entries[k]
	if ok {
		e.Value.(*lruEntry[K, V]).val = v
	}
	return ok
}

// remove drops k and returns the value it had.
func (c *lru[K, V]) remove(k K) (V, bool) {
	e, ok := c.entries[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.Remove(e)
	delete(c.entries, k)
	return e.Value.(*lruEntry[K, V]).val, true
}

func (c *lru[K, V]) len() int { return len(c.entries) }

// keys returns the keys held, in no particular order.
func (c *lru[K, V]) keys() []K {
	out := make([]K, 0, len(c.entries))
	for k := range c.entries {
		out = append(out, k)
	}
	return out
}
