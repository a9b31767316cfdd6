package cutover

import (
	"context"
	"fmt"

	"github.com/daisychain-db/daisychain/flags"
)

// Reading the routes of a set: in one call where the reader can
// (BatchRouteReader, BatchPublishedReader), else tenant by tenant,
// parallelDefault at a time, so that a conversion of a thousand tenants
// costs a thousand round trips spread over parallelDefault connections,
// not one after the other.

// resolvedRoute is one tenant's route as Routes resolves it, or why not.
type resolvedRoute struct {
	route flags.Route
	err   error
}

// resolveSet resolves the route of every tenant, in their order.
func (m *Mover) resolveSet(ctx context.Context, tenants []string) ([]resolvedRoute, error) {
	out := make([]resolvedRoute, len(tenants))
	if br, ok := m.cfg.Routes.(BatchRouteReader); ok && len(tenants) > 1 {
		routes, err := br.ResolveMany(ctx, tenants)
		if err != nil {
			return nil, err
		}
		if len(routes) != len(tenants) {
			return nil, fmt.Errorf("%T.ResolveMany returned %d routes for %d tenants", m.cfg.Routes, len(routes), len(tenants))
		}
		for i, r := range routes {
			out[i].route = r
		}
		return out, nil
	}
	err := inParallel(ctx, len(tenants), parallelDefault, func(ctx context.Context, i int) error {
		out[i].route, out[i].err = m.cfg.Routes.Resolve(ctx, tenants[i])
		return nil
	})
	return out, err
}

// publishedRoute is the route the Publisher holds for one tenant; found
// is false when it holds none.
type publishedRoute struct {
	route flags.Route
	found bool
}

// publishedSet reads back the route the Publisher holds for every tenant,
// in their order. pr is the Publisher as a PublishedReader.
func (m *Mover) publishedSet(ctx context.Context, pr PublishedReader, tenants []string) ([]publishedRoute, error) {
	out := make([]publishedRoute, len(tenants))
	if br, ok := pr.(BatchPublishedReader); ok && len(tenants) > 1 {
		routes, err := br.PublishedMany(ctx, tenants)
		if err != nil {
			return nil, err
		}
		for i, t := range tenants {
			out[i].route, out[i].found = routes[t]
		}
		return out, nil
	}
	err := inParallel(ctx, len(tenants), parallelDefault, func(ctx context.Context, i int) error {
		var err error
		out[i].route, out[i].found, err = pr.Published(ctx, tenants[i])
		return err
	})
	return out, err
}
