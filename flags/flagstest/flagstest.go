// Package flagstest helps tests wire package flags to throwaway localpg
// instances: an OpenFeature client of an isolated API for a provider,
// instances registered in a catalog, and the Router's pool settings for
// them. Everything it starts is stopped in tb.Cleanup.
package flagstest

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
)

// Client sets provider on a new isolated OpenFeature API, waits until it
// is ready, and returns a client of that API. The API (and so the
// provider) is shut down in tb.Cleanup.
func Client(tb testing.TB, provider openfeature.FeatureProvider) *openfeature.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api := isolated.NewAPI()
	tb.Cleanup(func() {
		if err := api.Shutdown(context.Background()); err != nil {
			tb.Errorf("flagstest: shut the OpenFeature API down: %v", err)
		}
	})
	if err := api.SetProviderAndWait(ctx, provider); err != nil {
		tb.Fatalf("flagstest: set provider %s: %v", provider.Metadata().Name, err)
	}
	return api.NewClient()
}

// Register registers inst in catalog under id (admin connection as the
// superuser, endpoint on localpg.Host and the instance's port) and returns
// it.
func Register(tb testing.TB, catalog fleet.Catalog, id string, inst *localpg.Instance) fleet.Instance {
	tb.Helper()
	fi := fleet.Instance{
		ID:       id,
		Admin:    inst.ConnString("postgres"),
		Endpoint: fleet.Endpoint{Host: localpg.Host, Port: inst.Port()},
	}
	if err := catalog.RegisterInstance(context.Background(), fi); err != nil {
		tb.Fatalf("flagstest: register %s: %v", id, err)
	}
	return fi
}

// PoolConfig returns a flags.RouterConfig.PoolConfig that connects as the
// superuser of the instance byID[route.Instance], with the pool settings
// in params (such as "pool_max_conns=4"; may be empty).
func PoolConfig(byID map[string]*localpg.Instance, params string) func(context.Context, flags.Route) (*pgxpool.Config, error) {
	return func(_ context.Context, r flags.Route) (*pgxpool.Config, error) {
		inst, ok := byID[r.Instance]
		if !ok {
			return nil, fmt.Errorf("flagstest: no credentials for instance %q", r.Instance)
		}
		u, err := url.Parse(inst.ConnString(r.Endpoint.Database))
		if err != nil {
			return nil, err
		}
		if params != "" {
			u.RawQuery += "&" + params
		}
		return pgxpool.ParseConfig(u.String())
	}
}
