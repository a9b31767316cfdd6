// Package host is what an application that embeds daisychain writes once
// at start, shared by the examples: the catalog, the route provider
// behind an OpenFeature API of its own, the Resolver, the Router its
// request handlers take connections from, the journal and the Mover, all
// wired by hand from connection strings (host.go); and request handlers
// that write through the Router and remember every write they were told
// had committed (writers.go). It is the part of the examples to copy.
package host
