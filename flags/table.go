package flags

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/open-feature/go-sdk/openfeature"
)

// eventBuffer is how many events a provider keeps for a slow reader. The
// OpenFeature SDK reads them as they come; when nobody reads (a provider
// used only to publish, or never registered), further events are dropped
// rather than blocking a publisher: readers re-evaluate from memory anyway.
const eventBuffer = 256

// FlagMetadataSeq is the FlagMetadata key under which the providers of
// this package return the write sequence number of a tenant's route: it
// grows with every write of the route store (publish or forget), so it
// orders a tenant's routes across a Forget, after which epochs start
// again from 1. A Resolver reads it; other providers need not set it.
const FlagMetadataSeq = "seq"

// FlagMetadataAbsentAsOf is the FlagMetadata key under which the providers
// of this package say, with a FLAG_NOT_FOUND for a tenant whose route a
// read found absent, the newest write sequence number they had seen
// then. A FLAG_NOT_FOUND for a route they saw forgotten carries the
// forget's number as FlagMetadataSeq instead.
const FlagMetadataAbsentAsOf = "absent_as_of"

// stored is what a provider knows of a tenant's route: the route, or that
// there is none, and the sequence number of the write that made it so.
type stored struct {
	route Route
	seq   int64
	found bool // false: no route (never published, or forgotten)
	// asOf, for a route found absent by a read, is the newest write
	// sequence number the provider had seen when it read: every route
	// it served before has been forgotten since. It is not an order
	// between writes (seq is), only what the absence answers to a
	// Resolver that served an older route.
	asOf int64
}

// newer reports whether s supersedes cur: a later write, by sequence
// number; rows written before sequence numbers existed (0) are ordered
// by epoch.
func (s stored) newer(cur stored) bool {
	if s.seq != cur.seq {
		return s.seq > cur.seq
	}
	return s.found && cur.found && s.route.Epoch > cur.route.Epoch
}

// routeTable is the OpenFeature plumbing both writable providers share
// (metadata, evaluation, events); find, set by the embedding provider,
// says what the provider knows of a tenant's route.
type routeTable struct {
	name    string
	find    func(ctx context.Context, tenant string) (stored, error)
	events  chan openfeature.Event
	dropped atomic.Int64
}

func (t *routeTable) init(name string, find func(context.Context, string) (stored, error)) {
	t.name, t.find, t.events = name, find, make(chan openfeature.Event, eventBuffer)
}

// emit sends ev without blocking; see eventBuffer.
func (t *routeTable) emit(ev openfeature.Event) {
	ev.ProviderName = t.name
	select {
	case t.events <- ev:
	default:
		t.dropped.Add(1)
	}
}

// routeChanged emits a configuration-changed event for one tenant.
func (t *routeTable) routeChanged(tenant string, st stored) {
	msg := fmt.Sprintf("route of tenant %q is now %s", tenant, st.route)
	meta := map[string]any{EventMetadataTenant: tenant, "epoch": st.route.Epoch}
	if !st.found {
		msg = fmt.Sprintf("route of tenant %q forgotten: the catalog's applies", tenant)
		meta = map[string]any{EventMetadataTenant: tenant}
	}
	t.emit(openfeature.Event{
		EventType: openfeature.ProviderConfigChange,
		ProviderEventDetails: openfeature.ProviderEventDetails{
			Message:       msg,
			FlagChanges:   []string{RouteFlagKey},
			EventMetadata: meta,
		},
	})
}

// routesChanged emits one configuration-changed event naming tenants
// whose routes were published.
func (t *routeTable) routesChanged(tenants []string) {
	if len(tenants) == 0 {
		return
	}
	if len(tenants) == 1 {
		t.emit(openfeature.Event{EventType: openfeature.ProviderConfigChange, ProviderEventDetails: openfeature.ProviderEventDetails{
			Message:       fmt.Sprintf("route of tenant %q changed (published)", tenants[0]),
			FlagChanges:   []string{RouteFlagKey},
			EventMetadata: map[string]any{EventMetadataTenant: tenants[0]},
		}})
		return
	}
	t.emit(openfeature.Event{EventType: openfeature.ProviderConfigChange, ProviderEventDetails: openfeature.ProviderEventDetails{
		Message:       fmt.Sprintf("routes of %d tenants changed (published)", len(tenants)),
		FlagChanges:   []string{RouteFlagKey},
		EventMetadata: map[string]any{EventMetadataTenants: tenants},
	}})
}

// Metadata implements openfeature.FeatureProvider.
func (t *routeTable) Metadata() openfeature.Metadata { return openfeature.Metadata{Name: t.name} }

// Hooks implements openfeature.FeatureProvider: none.
func (t *routeTable) Hooks() []openfeature.Hook { return nil }

// EventChannel implements openfeature.EventHandler. Configuration-changed
// events name RouteFlagKey in FlagChanges and the tenants whose route
// changed in EventMetadata: EventMetadataTenant for one,
// EventMetadataTenants ([]string) for several.
func (t *routeTable) EventChannel() <-chan openfeature.Event { return t.events }

// ObjectEvaluation implements openfeature.FeatureProvider: RouteFlagKey
// with a targeting key (the tenant ID) resolves to the tenant's route
// (Route.FlagValue), with its epoch and FlagMetadataSeq in FlagMetadata;
// a tenant without a route, or any other flag, is FLAG_NOT_FOUND, so that
// a multi-provider can ask the next one (for a tenant whose route was
// forgotten, with FlagMetadataSeq saying as of which write). A provider that could not read
// the route (PostgresProvider, on a cache miss) answers GENERAL.
func (t *routeTable) ObjectEvaluation(ctx context.Context, flag string, defaultValue any, flatCtx openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	res := openfeature.InterfaceResolutionDetail{Value: defaultValue}
	res.Reason = openfeature.ErrorReason
	if flag != RouteFlagKey {
		res.ResolutionError = openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("%s serves only %q", t.name, RouteFlagKey))
		return res
	}
	tenant, _ := flatCtx[openfeature.TargetingKey].(string)
	if tenant == "" {
		res.ResolutionError = openfeature.NewTargetingKeyMissingResolutionError(RouteFlagKey + " needs the tenant ID as targeting key")
		return res
	}
	st, err := t.find(ctx, tenant)
	if err != nil {
		res.ResolutionError = openfeature.NewGeneralResolutionError(fmt.Sprintf("read the route of tenant %q: %v", tenant, err))
		return res
	}
	if !st.found {
		res.ResolutionError = openfeature.NewFlagNotFoundResolutionError("no route published for tenant " + tenant)
		// A Resolver that served an older route learns that it is
		// gone (see Resolver.Resolve).
		switch {
		case st.seq > 0:
			res.FlagMetadata = openfeature.FlagMetadata{FlagMetadataSeq: st.seq}
		case st.asOf > 0:
			res.FlagMetadata = openfeature.FlagMetadata{FlagMetadataAbsentAsOf: st.asOf}
		}
		return res
	}
	res.Value = st.route.FlagValue()
	res.Reason = openfeature.TargetingMatchReason
	res.Variant = st.route.Instance
	res.FlagMetadata = openfeature.FlagMetadata{"epoch": st.route.Epoch, FlagMetadataSeq: st.seq}
	return res
}

func (t *routeTable) notObject(flag string) openfeature.ProviderResolutionDetail {
	d := openfeature.ProviderResolutionDetail{Reason: openfeature.ErrorReason}
	if flag == RouteFlagKey {
		d.ResolutionError = openfeature.NewTypeMismatchResolutionError(RouteFlagKey + " is an object flag")
	} else {
		d.ResolutionError = openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("%s serves only %q", t.name, RouteFlagKey))
	}
	return d
}

// BooleanEvaluation implements openfeature.FeatureProvider: no boolean flags.
func (t *routeTable) BooleanEvaluation(_ context.Context, flag string, def bool, _ openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	return openfeature.BoolResolutionDetail{Value: def, ProviderResolutionDetail: t.notObject(flag)}
}

// StringEvaluation implements openfeature.FeatureProvider: no string flags.
func (t *routeTable) StringEvaluation(_ context.Context, flag string, def string, _ openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	return openfeature.StringResolutionDetail{Value: def, ProviderResolutionDetail: t.notObject(flag)}
}

// FloatEvaluation implements openfeature.FeatureProvider: no float flags.
func (t *routeTable) FloatEvaluation(_ context.Context, flag string, def float64, _ openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return openfeature.FloatResolutionDetail{Value: def, ProviderResolutionDetail: t.notObject(flag)}
}

// IntEvaluation implements openfeature.FeatureProvider: no int flags.
func (t *routeTable) IntEvaluation(_ context.Context, flag string, def int64, _ openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	return openfeature.IntResolutionDetail{Value: def, ProviderResolutionDetail: t.notObject(flag)}
}
