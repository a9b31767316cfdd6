package cutover_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// TestNewRefusesBadConfigs: each bad field is refused by New, and the
// error names it.
func TestNewRefusesBadConfigs(t *testing.T) {
	catalog := fleet.NewMemoryCatalog()
	provider := flags.NewMemoryProvider()
	good := func() cutover.Config {
		return cutover.Config{Catalog: catalog, Publisher: provider, Routes: noRoutes{}}
	}
	for _, c := range []struct {
		field  string
		change func(*cutover.Config)
	}{
		{"Catalog", func(c *cutover.Config) { c.Catalog = nil }},
		{"Publisher", func(c *cutover.Config) { c.Publisher = nil }},
		{"Routes", func(c *cutover.Config) { c.Routes = nil }},
		{"Verify", func(c *cutover.Config) { c.Verify = -1 }},
		{"Verify", func(c *cutover.Config) { c.Verify = replica.VerifyOff + 1 }},
		{"WindowBudget", func(c *cutover.Config) { c.WindowBudget = -time.Second }},
		{"CatchUpLag", func(c *cutover.Config) { c.CatchUpLag = -1 }},
		{"CatchUpTimeout", func(c *cutover.Config) { c.CatchUpTimeout = -time.Second }},
		{"QuiesceGrace", func(c *cutover.Config) { c.QuiesceGrace = 5 * time.Second; c.WindowBudget = 5 * time.Second }},
		{"Fences", func(c *cutover.Config) { c.Fences = []cutover.Fence{nil} }},
	} {
		cfg := good()
		c.change(&cfg)
		_, err := cutover.New(&cfg)
		if !errors.Is(err, cutover.ErrInvalidConfig) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("New with a bad %s: %v, want ErrInvalidConfig naming %s", c.field, err, c.field)
		}
	}
	if _, err := cutover.New(nil); !errors.Is(err, cutover.ErrInvalidConfig) || !errors.Is(err, fleet.ErrInvalid) {
		t.Errorf("New(nil): %v, want ErrInvalidConfig, which is also fleet.ErrInvalid", err)
	}
	cfg := good()
	cfg.QuiesceGrace, cfg.WindowBudget = -1, time.Millisecond // no grace at all
	if _, err := cutover.New(&cfg); err != nil {
		t.Errorf("New with no drain grace and a short budget: %v", err)
	}
	cfg = good()
	cfg.WindowBudget = time.Second // shorter than the default grace, which then shrinks
	if _, err := cutover.New(&cfg); err != nil {
		t.Errorf("New with a budget shorter than the default grace: %v", err)
	}
	cfg = good()
	cfg.Routes = nil
	cfg.Verify = 9
	if _, err := cutover.New(&cfg); err == nil || !strings.Contains(err.Error(), "Routes") || !strings.Contains(err.Error(), "Verify") {
		t.Errorf("New with two bad fields: %v, want both named", err)
	}
}

// noRoutes is a RouteReader for what reads no route.
type noRoutes struct{}

func (noRoutes) Resolve(context.Context, string) (flags.Route, error) {
	return flags.Route{}, errors.New("no routes here")
}
