package flags_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
	"github.com/daisychain-db/daisychain/fleet"
)

// countingCatalog counts the lookups of a catalog.
type countingCatalog struct {
	fleet.Catalog
	instances, instance, locate atomic.Int64
}

func (c *countingCatalog) Instances(ctx context.Context) ([]fleet.Instance, error) {
	c.instances.Add(1)
	return c.Catalog.Instances(ctx)
}

func (c *countingCatalog) Instance(ctx context.Context, id string) (fleet.Instance, error) {
	c.instance.Add(1)
	return c.Catalog.Instance(ctx, id)
}

func (c *countingCatalog) Locate(ctx context.Context, id string) (fleet.Tenant, error) {
	c.locate.Add(1)
	return c.Catalog.Locate(ctx, id)
}

// TestPublishManyAllOrNothing, for both providers: every route of a batch
// is published, with one catalog read per instance the batch names (never
// a listing of the fleet); one stale epoch
// or one route the catalog does not back publishes nothing, and the
// error names the tenant.
func TestPublishManyAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc, a, b := memCatalog(t)
	e := newOneEnv(t)
	type batchPublisher interface {
		flags.BatchPublisher
		Published(ctx context.Context, tenantID string) (flags.Route, bool, error)
	}
	for _, name := range []string{"memory", "postgres"} {
		t.Run(name, func(t *testing.T) {
			cat := &countingCatalog{Catalog: mc}
			var p batchPublisher
			if name == "memory" {
				p = flags.NewMemoryProviderWithConfig(&flags.MemoryConfig{Catalog: cat})
			} else {
				pg, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{Catalog: cat, Schema: "batch"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pg.Close)
				p = pg
			}
			batch := func(epoch int64, tenants ...string) []flags.TenantRoute {
				var out []flags.TenantRoute
				for i, tn := range tenants {
					inst := a
					if i%2 == 1 {
						inst = b
					}
					out = append(out, flags.TenantRoute{Tenant: tn, Route: flags.RouteTo(inst, "db_"+tn, epoch)})
				}
				return out
			}
			if err := p.PublishMany(ctx, batch(1, "x1", "x2", "x3")); err != nil {
				t.Fatal(err)
			}
			if cat.instances.Load() != 0 || cat.instance.Load() != 2 {
				t.Errorf("%d Instances and %d Instance reads to check 3 routes to 2 instances; want no listing of the fleet, one read per instance",
					cat.instances.Load(), cat.instance.Load())
			}
			published := func(tenant string) int64 {
				r, ok, err := p.Published(ctx, tenant)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					return 0
				}
				return r.Epoch
			}
			for _, tn := range []string{"x1", "x2", "x3"} {
				if ep := published(tn); ep != 1 {
					t.Errorf("%s at epoch %d after the batch, want 1", tn, ep)
				}
			}

			// x2 already at 5: the whole batch at 2..3 is refused.
			if err := p.Publish(ctx, "x2", flags.RouteTo(b, "db_x2", 5)); err != nil {
				t.Fatal(err)
			}
			err := p.PublishMany(ctx, append(batch(2, "x1", "x2"), batch(3, "x3", "x4")...))
			var se *flags.StaleEpochsError
			if !errors.Is(err, flags.ErrStaleEpoch) || !errors.As(err, &se) || len(se.Conflicts) != 1 ||
				se.Conflicts[0] != (flags.EpochConflict{Tenant: "x2", Held: 5, Refused: 2}) || !strings.Contains(err.Error(), `"x2"`) {
				t.Fatalf("a batch with one stale epoch: %v; want a StaleEpochsError naming x2 at 5", err)
			}
			for tn, want := range map[string]int64{"x1": 1, "x2": 5, "x3": 1, "x4": 0} {
				if ep := published(tn); ep != want {
					t.Errorf("after the refused batch %s is at epoch %d, want %d (nothing published)", tn, ep, want)
				}
			}

			rogue := batch(7, "x1", "x3")
			rogue[1].Route.Instance = "pg-rogue"
			err = p.PublishMany(ctx, rogue)
			if !errors.Is(err, flags.ErrUnknownInstance) || !strings.Contains(err.Error(), `"x3"`) {
				t.Errorf("a batch with a route to an unknown instance: %v; want ErrUnknownInstance naming x3", err)
			}
			dup := append(batch(8, "x1"), batch(9, "x1")...)
			if err := p.PublishMany(ctx, dup); !errors.Is(err, flags.ErrInvalidRoute) {
				t.Errorf("a batch naming x1 twice: %v; want ErrInvalidRoute", err)
			}
			if ep := published("x1"); ep != 1 {
				t.Errorf("x1 at epoch %d after refused batches, want 1", ep)
			}
			if err := p.PublishMany(ctx, nil); err != nil {
				t.Errorf("an empty batch: %v", err)
			}
		})
	}
}

// TestPublishManyNotifiesInBoundedPayloads: a batch of 600 routes with
// long tenant IDs is announced in notifications under PostgreSQL's 8,000
// bytes, together naming every tenant once, and a reader holding some of
// them follows; one event names them.
func TestPublishManyNotifiesInBoundedPayloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	pub := e.provider(t)
	reader := e.provider(t)
	c := flagstest.Client(t, reader)
	changes := make(chan openfeature.EventDetails, 100)
	cb := openfeature.EventCallback(ptr(func(d openfeature.EventDetails) { changes <- d }))
	c.AddHandler(openfeature.ProviderConfigChange, cb)
	t.Cleanup(func() { c.RemoveHandler(openfeature.ProviderConfigChange, cb) })
	name := func(i int) string { return fmt.Sprintf("%s-%04d", strings.Repeat("tenant", 30), i) }
	held := []string{name(3), name(299), name(598)}
	for _, tn := range held {
		if _, err := evaluate(t, c, tn); err == nil {
			t.Fatalf("%s has a route already", tn)
		}
	}
	raw := listen(t, e)

	const n = 600
	routes := make([]flags.TenantRoute, n)
	for i := range routes {
		routes[i] = flags.TenantRoute{Tenant: name(i), Route: flags.RouteTo(e.instA, fmt.Sprintf("db_%d", i), 1)}
	}
	if err := pub.PublishMany(ctx, routes); err != nil {
		t.Fatal(err)
	}
	named := map[string]int{}
	notifications := 0
	for len(named) < n {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := raw.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d notifications naming %d tenants: %v", notifications, len(named), err)
		}
		notifications++
		if len(msg.Payload) >= 8000 {
			t.Errorf("notification %d is %d bytes", notifications, len(msg.Payload))
		}
		var p struct {
			Routes []struct{ Tenant string } `json:"routes"`
		}
		if err := json.Unmarshal([]byte(msg.Payload), &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Routes {
			named[r.Tenant]++
		}
	}
	for tn, k := range named {
		if k != 1 {
			t.Errorf("%s named %d times", tn, k)
		}
	}
	t.Logf("%d routes announced in %d notifications", n, notifications)
	if notifications < 2 || notifications > n/5 {
		t.Errorf("%d notifications for %d routes; want them chunked, at least 5 routes a notification", notifications, n)
	}
	for _, tn := range held {
		waitFor(t, "the reader to follow "+tn, 5*time.Second, func() bool { r, _ := reader.Lookup(tn); return r.Epoch == 1 })
	}
	if s := reader.CacheStats(); s.Cached != len(held) {
		t.Errorf("the reader holds %d tenants after the batch, want the %d it was asked about", s.Cached, len(held))
	}
	got := map[string]bool{}
	for len(got) < len(held) {
		d := expect(t, changes, "configuration-changed events naming the held tenants")
		for _, tn := range eventTenants(d) {
			got[tn] = true
		}
	}
	for tn := range got {
		if !strings.HasPrefix(tn, "tenant") || !contains(held, tn) {
			t.Errorf("event names %s, which the reader does not hold", tn)
		}
	}
}

func eventTenants(d openfeature.EventDetails) []string {
	if ts, ok := d.EventMetadata[flags.EventMetadataTenants].([]string); ok {
		return ts
	}
	if tn, ok := d.EventMetadata[flags.EventMetadataTenant].(string); ok {
		return []string{tn}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
