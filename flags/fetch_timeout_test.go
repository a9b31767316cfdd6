package flags_test

import (
	"context"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/daisychain-db/daisychain/flags"
)

// TestFetchTimeout: PostgresConfig.FetchTimeout bounds the read of a
// route on a cache miss, whatever the evaluation's context: while the
// route table is locked, a provider with a short FetchTimeout answers
// with an error, and one with a long FetchTimeout still waits, then
// answers once the lock is gone.
func TestFetchTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	provider := func(timeout time.Duration) *flags.PostgresProvider {
		p, err := flags.NewPostgresProvider(ctx, e.control, &flags.PostgresConfig{FetchTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	short, long := provider(100*time.Millisecond), provider(time.Minute)
	route := flags.RouteTo(e.instA, "tenant_1", 1)
	if err := long.Publish(ctx, "t1", route); err != nil {
		t.Fatal(err)
	}
	evaluate := func(p *flags.PostgresProvider) openfeature.InterfaceResolutionDetail {
		return p.ObjectEvaluation(ctx, flags.RouteFlagKey, nil, openfeature.FlattenedContext{openfeature.TargetingKey: "t1"})
	}

	locker, err := e.a.Connect(ctx, "control")
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // the test ends the lock either way
	if _, err := tx.Exec(ctx, "LOCK TABLE daisychain.routes IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	waited := make(chan openfeature.InterfaceResolutionDetail, 1)
	go func() { waited <- evaluate(long) }()
	if res := evaluate(short); res.Error() == nil {
		t.Fatalf("a read held by a lock beyond FetchTimeout answered %v; want an error", res.Value)
	} else {
		t.Logf("FetchTimeout 100ms: %v", res.Error())
	}
	select {
	case res := <-waited:
		t.Fatalf("the provider with a FetchTimeout of a minute gave up with the one of 100ms: %v", res.Error())
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-waited
	if err := res.Error(); err != nil {
		t.Fatalf("the provider with a FetchTimeout of a minute, once the lock is gone: %v", err)
	}
	if got, err := flags.DecodeRoute(res.Value); err != nil || got != route {
		t.Errorf("route %v (%v), want %v", got, err, route)
	}
}
