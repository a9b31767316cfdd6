package drain_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// noRoutes is a cutover.RouteReader for what reads no route.
type noRoutes struct{}

func (noRoutes) Resolve(context.Context, string) (flags.Route, error) {
	return flags.Route{}, errors.New("no routes here")
}

// TestNewRefusesBadConfigs: each bad field is refused by New with
// ErrInvalid, and the error names it.
func TestNewRefusesBadConfigs(t *testing.T) {
	catalog := fleet.NewMemoryCatalog()
	mover, err := cutover.New(&cutover.Config{Catalog: catalog, Publisher: flags.NewMemoryProvider(), Routes: noRoutes{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field string
		cfg   drain.Config
	}{
		{"Catalog", drain.Config{Mover: mover}},
		{"Mover", drain.Config{Catalog: catalog}},
		{"Concurrency", drain.Config{Catalog: catalog, Mover: mover, Concurrency: -1}},
	} {
		if _, err := drain.New(&c.cfg); !errors.Is(err, drain.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("New with a bad %s: %v, want ErrInvalid naming %s", c.field, err, c.field)
		}
	}
	if _, err := drain.New(nil); !errors.Is(err, drain.ErrInvalid) {
		t.Errorf("New(nil): %v, want ErrInvalid", err)
	}
	if _, err := drain.New(&drain.Config{Catalog: catalog, Mover: mover}); err != nil {
		t.Errorf("New with a good config: %v", err)
	}
}
