package flags_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
)

func routeAt(epoch int64) flags.Route {
	r := sample
	r.Paused, r.Epoch = false, epoch
	return r
}

func evaluate(t *testing.T, c *openfeature.Client, tenant string) (flags.Route, error) {
	t.Helper()
	v, err := c.ObjectValue(context.Background(), flags.RouteFlagKey, nil, openfeature.NewEvaluationContext(tenant, nil))
	if err != nil {
		return flags.Route{}, err
	}
	return flags.DecodeRoute(v)
}

func TestMemoryProviderPublishAndEvaluate(t *testing.T) {
	ctx := context.Background()
	p := flags.NewMemoryProvider()
	c := flagstest.Client(t, p)

	if _, err := evaluate(t, c, "t1"); err == nil {
		t.Fatal("a tenant without a route resolved")
	}
	if err := p.Publish(ctx, "t1", routeAt(1)); err != nil {
		t.Fatal(err)
	}
	if got, err := evaluate(t, c, "t1"); err != nil || got != routeAt(1) {
		t.Fatalf("evaluate = %v, %v", got, err)
	}
	// Epochs only grow.
	for _, e := range []int64{1, 0} {
		if err := p.Publish(ctx, "t1", routeAt(e)); !errors.Is(err, flags.ErrStaleEpoch) && !errors.Is(err, flags.ErrInvalidRoute) {
			t.Errorf("publish epoch %d after 1: %v, want a refusal", e, err)
		}
	}
	if err := p.Publish(ctx, "t1", routeAt(1)); !errors.Is(err, flags.ErrStaleEpoch) {
		t.Errorf("publish the same epoch: %v, want ErrStaleEpoch", err)
	}
	bad := routeAt(2)
	bad.Endpoint.Port = 0
	if err := p.Publish(ctx, "t1", bad); !errors.Is(err, flags.ErrInvalidRoute) {
		t.Errorf("publish an invalid route: %v", err)
	}
	if err := p.Publish(ctx, "", routeAt(2)); !errors.Is(err, flags.ErrInvalidRoute) {
		t.Errorf("publish for an empty tenant: %v", err)
	}
	// Other types and flags are not served.
	if _, err := c.BooleanValue(ctx, flags.RouteFlagKey, false, openfeature.NewEvaluationContext("t1", nil)); err == nil {
		t.Error("the route flag evaluated as a boolean")
	}
	d, _ := c.ObjectValueDetails(ctx, "other", nil, openfeature.NewEvaluationContext("t1", nil))
	if d.ErrorCode != openfeature.FlagNotFoundCode {
		t.Errorf("another flag: %v, want FLAG_NOT_FOUND", d.ErrorCode)
	}
	d, _ = c.ObjectValueDetails(ctx, flags.RouteFlagKey, nil, openfeature.EvaluationContext{})
	if d.ErrorCode != openfeature.TargetingKeyMissingCode {
		t.Errorf("no targeting key: %v", d.ErrorCode)
	}
}

func TestMemoryProviderEmitsConfigChange(t *testing.T) {
	p := flags.NewMemoryProvider()
	c := flagstest.Client(t, p)
	got := make(chan openfeature.EventDetails, 10)
	cb := openfeature.EventCallback(ptr(func(d openfeature.EventDetails) { got <- d }))
	c.AddHandler(openfeature.ProviderConfigChange, cb)
	defer c.RemoveHandler(openfeature.ProviderConfigChange, cb)

	if err := p.Publish(context.Background(), "t9", routeAt(3)); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if len(d.FlagChanges) != 1 || d.FlagChanges[0] != flags.RouteFlagKey || d.EventMetadata[flags.EventMetadataTenant] != "t9" {
			t.Errorf("event %+v does not name the flag and the tenant", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no configuration-changed event")
	}
}

func TestMemoryProviderConcurrent(t *testing.T) {
	ctx := context.Background()
	p := flags.NewMemoryProvider()
	c := flagstest.Client(t, p)
	const writers, epochs = 4, 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[int64]int{}
	for w := range writers {
		wg.Go(func() {
			for e := int64(1); e <= epochs; e++ {
				if err := p.Publish(ctx, "t1", routeAt(e)); err == nil {
					mu.Lock()
					won[e]++
					mu.Unlock()
				} else if !errors.Is(err, flags.ErrStaleEpoch) {
					t.Errorf("writer %d: %v", w, err)
				}
			}
		})
		wg.Go(func() { // readers never see an epoch go back
			last := int64(0)
			for range epochs {
				r, err := evaluate(t, c, "t1")
				if err == nil && r.Epoch < last {
					t.Errorf("epoch went back from %d to %d", last, r.Epoch)
				}
				last = r.Epoch
			}
		})
	}
	wg.Wait()
	for e, n := range won {
		if n > 1 {
			t.Errorf("epoch %d was published %d times", e, n)
		}
	}
	if r, _ := p.Lookup("t1"); r.Epoch != epochs {
		t.Errorf("final epoch %d, want %d", r.Epoch, epochs)
	}
}

func ptr[T any](v T) *T { return &v }

// stubClient answers every evaluation with a fixed value or error code.
type stubClient struct {
	mu    sync.Mutex
	value any
	code  openfeature.ErrorCode
}

func (s *stubClient) set(v any, code openfeature.ErrorCode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value, s.code = v, code
}

func (s *stubClient) ObjectValueDetails(_ context.Context, flag string, def any, _ openfeature.EvaluationContext, _ ...openfeature.Option) (openfeature.InterfaceEvaluationDetails, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := openfeature.InterfaceEvaluationDetails{Value: s.value}
	d.FlagKey = flag
	if s.code != "" {
		d.Value, d.ErrorCode = def, s.code
		return d, fmt.Errorf("error code: %s", s.code)
	}
	return d, nil
}
