package flags

import (
	"time"

	"github.com/open-feature/go-sdk/openfeature"
)

// EventTenants returns the tenants a provider's configuration-changed
// event names (EventMetadataTenant, EventMetadataTenants), or none: an
// event that names no tenant (a provider ready again after a reconnect)
// may concern every route. Router and flags/pgbouncer's Follower follow
// routes by it.
func EventTenants(d openfeature.EventDetails) []string {
	var tenants []string
	switch v := d.EventMetadata[EventMetadataTenants].(type) {
	case []string:
		tenants = append(tenants, v...)
	case []any:
		for _, t := range v {
			if s, ok := t.(string); ok {
				tenants = append(tenants, s)
			}
		}
	}
	if t, ok := d.EventMetadata[EventMetadataTenant].(string); ok {
		tenants = append(tenants, t)
	}
	return tenants
}

// EventKind says what a ResolverEvent reports.
type EventKind string

// Kinds of Resolver events.
const (
	// EventRouteRefused: the route published for a tenant is malformed,
	// names an instance the catalog does not know, or another endpoint
	// than the catalog's; the Resolver serves the tenant's last valid
	// route instead (or the catalog's, if it returned none). Emitted once
	// per refused route and tenant, not on every Resolve.
	EventRouteRefused EventKind = "route_refused"
)

// ResolverEvent is something a Resolver met while resolving routes.
type ResolverEvent struct {
	Kind   EventKind
	Tenant string
	// Refused is the route refused, as far as it could be decoded.
	Refused Route
	// Serving is the route the Resolver returns instead.
	Serving Route
	// Err says why the route was refused: it wraps ErrInvalidRoute,
	// ErrUnknownInstance or ErrEndpointMismatch.
	Err error
	At  time.Time
}

// Subscribe returns a channel of the Resolver's events of the given kinds
// (all kinds when none are given) and a function that ends the
// subscription and closes the channel. Sending never blocks: events that
// do not fit in the channel's buffer (1024) are dropped, so a slow
// subscriber never slows a Resolve down.
func (r *Resolver) Subscribe(kinds ...EventKind) (<-chan *ResolverEvent, func()) {
	return r.events.Subscribe(kinds...)
}

func (r *Resolver) emit(e *ResolverEvent) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	r.events.Emit(e.Kind, e)
}
