package flags

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/open-feature/go-sdk/openfeature"
)

// eventBuffer is how many events a provider keeps for a slow reader. The
// OpenFeature SDK reads them as they come; when nobody reads (a provider
// used only to publish, or never registered), further events are dropped
// rather than blocking a publisher: readers re-evaluate from memory anyway.
const eventBuffer = 256

// routeTable is the in-memory state both writable providers evaluate from,
// and their OpenFeature plumbing (metadata, evaluation, events). Embedded
// in MemoryProvider and PostgresProvider.
type routeTable struct {
	name    string
	mu      sync.RWMutex
	routes  map[string]Route
	events  chan openfeature.Event
	dropped atomic.Int64
}

func (t *routeTable) init(name string) {
	t.name, t.routes, t.events = name, map[string]Route{}, make(chan openfeature.Event, eventBuffer)
}

// apply stores r as tenant's route if its epoch is greater than the one
// held, and reports whether it did and the epoch held before.
func (t *routeTable) apply(tenant string, r Route) (applied bool, held int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.routes[tenant]
	if ok && cur.Epoch >= r.Epoch {
		return false, cur.Epoch
	}
	t.routes[tenant] = r
	return true, cur.Epoch
}

// Lookup returns the route the provider holds in memory for the tenant,
// if any.
func (t *routeTable) Lookup(tenant string) (Route, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok := t.routes[tenant]
	return r, ok
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
func (t *routeTable) routeChanged(tenant string, r Route) {
	t.emit(openfeature.Event{
		EventType: openfeature.ProviderConfigChange,
		ProviderEventDetails: openfeature.ProviderEventDetails{
			Message:       fmt.Sprintf("route of tenant %q is now %s", tenant, r),
			FlagChanges:   []string{RouteFlagKey},
			EventMetadata: map[string]any{EventMetadataTenant: tenant, "epoch": r.Epoch},
		},
	})
}

// Metadata implements openfeature.FeatureProvider.
func (t *routeTable) Metadata() openfeature.Metadata { return openfeature.Metadata{Name: t.name} }

// Hooks implements openfeature.FeatureProvider: none.
func (t *routeTable) Hooks() []openfeature.Hook { return nil }

// EventChannel implements openfeature.EventHandler. Configuration-changed
// events name RouteFlagKey in FlagChanges and the tenant in EventMetadata
// (EventMetadataTenant, or EventMetadataTenants after a reload).
func (t *routeTable) EventChannel() <-chan openfeature.Event { return t.events }

// ObjectEvaluation implements openfeature.FeatureProvider: RouteFlagKey
// with a targeting key (the tenant ID) resolves from memory to the
// tenant's route (Route.FlagValue); a tenant without a route, or any other
// flag, is FLAG_NOT_FOUND, so that a multi-provider can ask the next one.
func (t *routeTable) ObjectEvaluation(_ context.Context, flag string, defaultValue any, flatCtx openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
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
	r, ok := t.Lookup(tenant)
	if !ok {
		res.ResolutionError = openfeature.NewFlagNotFoundResolutionError("no route published for tenant " + tenant)
		return res
	}
	res.Value = r.FlagValue()
	res.Reason = openfeature.TargetingMatchReason
	res.Variant = r.Instance
	res.FlagMetadata = openfeature.FlagMetadata{"epoch": r.Epoch}
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
