package cutover

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// routesOf40 is a Mover over an in-memory catalog and provider of 40
// tenants on "a", each with a published route at epoch i+1 (tenant 7's
// paused), whose Routes and Publisher count their calls.
func routesOf40(t *testing.T, batch bool) (*Mover, *countingRoutes, *countingPublished, []string) {
	t.Helper()
	ctx := context.Background()
	provider := flags.NewMemoryProvider()
	api := isolated.NewAPI()
	t.Cleanup(func() { api.Shutdown(context.Background()) })
	if err := api.SetProviderAndWait(ctx, provider); err != nil {
		t.Fatal(err)
	}
	catalog := fleet.NewMemoryCatalog()
	inst := fleet.Instance{ID: "a", Admin: "postgres://a", Endpoint: fleet.Endpoint{Host: "a", Port: 5432}}
	if err := catalog.RegisterInstance(ctx, inst); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%02d", i)
		if err := catalog.AddTenant(ctx, fleet.Tenant{ID: ids[i], Database: ids[i], Instance: "a"}); err != nil {
			t.Fatal(err)
		}
		route := flags.RouteTo(inst, ids[i], int64(i+1))
		route.Paused = i == 7
		if err := provider.Publish(ctx, ids[i], route); err != nil {
			t.Fatal(err)
		}
	}
	resolver, err := flags.NewResolver(api.NewClient(), catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	routes := &countingRoutes{inner: resolver}
	published := &countingPublished{inner: provider}
	var rr RouteReader = routes
	var pub flags.Publisher = published
	if batch {
		rr, pub = &batchRoutes{routes}, &batchPublished{published}
	}
	m, err := New(&Config{Catalog: catalog, Publisher: pub, Routes: rr})
	if err != nil {
		t.Fatal(err)
	}
	return m, routes, published, ids
}

type countingRoutes struct {
	inner     RouteReader
	one, many atomic.Int32
}

func (c *countingRoutes) Resolve(ctx context.Context, id string) (flags.Route, error) {
	c.one.Add(1)
	return c.inner.Resolve(ctx, id)
}

// batchRoutes adds ResolveMany, which answers from the same resolver.
type batchRoutes struct{ *countingRoutes }

func (b *batchRoutes) ResolveMany(ctx context.Context, ids []string) ([]flags.Route, error) {
	b.many.Add(1)
	out := make([]flags.Route, len(ids))
	for i, id := range ids {
		r, err := b.inner.Resolve(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

type countingPublished struct {
	inner     *flags.MemoryProvider
	one, many atomic.Int32
}

func (c *countingPublished) Publish(ctx context.Context, id string, r flags.Route) error {
	return c.inner.Publish(ctx, id, r)
}

func (c *countingPublished) Published(ctx context.Context, id string) (flags.Route, bool, error) {
	c.one.Add(1)
	return c.inner.Published(ctx, id)
}

// batchPublished adds PublishedMany, which answers from the same provider.
type batchPublished struct{ *countingPublished }

func (b *batchPublished) PublishedMany(ctx context.Context, ids []string) (map[string]flags.Route, error) {
	b.many.Add(1)
	out := map[string]flags.Route{}
	for _, id := range ids {
		r, found, err := b.inner.Published(ctx, id)
		if err != nil {
			return nil, err
		}
		if found {
			out[id] = r
		}
	}
	return out, nil
}

// TestSetRoutesReadInOneCallOrInParallel: the routes of a set (a
// conversion's preflight and Resume) are read in one call where the reader
// offers a batch, else tenant by tenant; either way each tenant gets its
// own route, in order.
func TestSetRoutesReadInOneCallOrInParallel(t *testing.T) {
	ctx := context.Background()
	for _, batch := range []bool{false, true} {
		m, routes, published, ids := routesOf40(t, batch)
		resolved, err := m.resolveSet(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		read, err := m.publishedSet(ctx, m.cfg.Publisher.(PublishedReader), append(ids, "unpublished"))
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			if r := resolved[i]; r.err != nil || r.route.Epoch != int64(i+1) || r.route.Paused != (i == 7) || r.route.Endpoint.Database != id {
				t.Errorf("batch %t: resolved route %d: %+v, want %s's at epoch %d", batch, i, r, id, i+1)
			}
			if p := read[i]; !p.found || p.route.Epoch != int64(i+1) {
				t.Errorf("batch %t: published route %d: %+v, want %s's at epoch %d", batch, i, p, id, i+1)
			}
		}
		if read[len(ids)].found {
			t.Errorf("batch %t: a tenant without a published route was found: %+v", batch, read[len(ids)])
		}
		wantOne, wantMany := int32(len(ids)), int32(0)
		if batch {
			wantOne, wantMany = 0, 1
		}
		if routes.one.Load() != wantOne || routes.many.Load() != wantMany {
			t.Errorf("batch %t: Resolve called %d times, ResolveMany %d; want %d and %d", batch, routes.one.Load(), routes.many.Load(), wantOne, wantMany)
		}
		if published.one.Load() != wantOne+1-wantMany || published.many.Load() != wantMany {
			t.Errorf("batch %t: Published called %d times, PublishedMany %d; want %d and %d",
				batch, published.one.Load(), published.many.Load(), wantOne+1-wantMany, wantMany)
		}
	}
}
