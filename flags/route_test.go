package flags_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

var sample = flags.Route{
	Instance: "pg-a",
	Endpoint: flags.Endpoint{Endpoint: fleet.Endpoint{Host: "10.0.0.1", Port: 5432}, Database: "tenant_1"},
	Paused:   true,
	Epoch:    7,
}

func TestDecodeRouteAcceptsProviderShapes(t *testing.T) {
	js, err := json.Marshal(sample)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any // what a JSON-backed provider returns: float64 numbers
	if err := json.Unmarshal(js, &generic); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{
		"FlagValue":       sample.FlagValue(),
		"generic map":     generic,
		"JSON string":     string(js),
		"JSON bytes":      js,
		"json.RawMessage": json.RawMessage(js),
		"Route":           sample,
		"*Route":          &sample,
		"json.Number": map[string]any{"instance": "pg-a", "paused": true, "epoch": json.Number("7"),
			"endpoint": map[string]any{"host": "10.0.0.1", "port": json.Number("5432"), "database": "tenant_1"}},
		"struct": struct {
			Instance string         `json:"instance"`
			Endpoint flags.Endpoint `json:"endpoint"`
			Paused   bool           `json:"paused"`
			Epoch    int            `json:"epoch"`
			Extra    string         `json:"extra"` // unknown fields are ignored
		}{"pg-a", sample.Endpoint, true, 7, "x"},
	} {
		got, err := flags.DecodeRoute(v)
		if err != nil || got != sample {
			t.Errorf("%s: got %+v, %v; want %+v", name, got, err, sample)
		}
	}
}

func TestDecodeRouteRejectsMalformed(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want []string // substrings of the error
	}{
		{nil, []string{"no value"}},
		{"not json", []string{"not a JSON object"}},
		{"null", []string{"JSON null"}},
		{map[string]any{}, []string{`"instance": missing`, `"endpoint": missing`, `"epoch": missing`}},
		{map[string]any{"instance": 3, "endpoint": "x", "epoch": 1.5, "paused": "yes"},
			[]string{`"instance": want a string`, `"endpoint": want an object`, `"epoch": want an integer`, `"paused": want a boolean`}},
		{map[string]any{"instance": "a", "epoch": 1, "endpoint": map[string]any{"host": "h", "port": "5432", "database": "d"}},
			[]string{`"endpoint.port": want an integer`}},
		{map[string]any{"instance": "a", "epoch": -1, "endpoint": map[string]any{"host": "h", "port": 70000, "database": ""}},
			[]string{"port 70000", "database", "epoch -1"}},
	} {
		_, err := flags.DecodeRoute(tc.v)
		if !errors.Is(err, flags.ErrInvalidRoute) || !errors.Is(err, fleet.ErrInvalid) {
			t.Errorf("DecodeRoute(%#v) = %v, want ErrInvalidRoute, which is also fleet.ErrInvalid", tc.v, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("DecodeRoute(%#v) = %q, want it to mention %q", tc.v, err, w)
			}
		}
	}
}

// TestRouteValidateLimits: each field of a route is accepted up to its
// limit and refused one past it, with ErrInvalidRoute naming the field;
// so is a published route's tenant ID.
func TestRouteValidateLimits(t *testing.T) {
	good := flags.Route{Instance: "pg-a", Endpoint: flags.Endpoint{Endpoint: fleet.Endpoint{Host: "10.0.0.1", Port: 5432}, Database: "tenant_1"}, Epoch: 1}
	for _, c := range []struct {
		field  string
		ok     bool
		change func(*flags.Route)
	}{
		{"instance", false, func(r *flags.Route) { r.Instance = "" }},
		{"instance", true, func(r *flags.Route) { r.Instance = strings.Repeat("i", 200) }},
		{"instance", false, func(r *flags.Route) { r.Instance = strings.Repeat("i", 201) }},
		{"host", false, func(r *flags.Route) { r.Endpoint.Host = "" }},
		{"host", true, func(r *flags.Route) { r.Endpoint.Host = strings.Repeat("h", 255) }},
		{"host", false, func(r *flags.Route) { r.Endpoint.Host = strings.Repeat("h", 256) }},
		{"port", false, func(r *flags.Route) { r.Endpoint.Port = 0 }},
		{"port", true, func(r *flags.Route) { r.Endpoint.Port = 65535 }},
		{"port", false, func(r *flags.Route) { r.Endpoint.Port = 65536 }},
		{"database", false, func(r *flags.Route) { r.Endpoint.Database = "" }},
		{"database", true, func(r *flags.Route) { r.Endpoint.Database = strings.Repeat("d", 63) }},
		{"database", false, func(r *flags.Route) { r.Endpoint.Database = strings.Repeat("d", 64) }},
		{"database", false, func(r *flags.Route) { r.Endpoint.Database = "tenant\x00_1" }},
		{"move", true, func(r *flags.Route) { r.Move = strings.Repeat("m", 512) }},
		{"move", false, func(r *flags.Route) { r.Move = strings.Repeat("m", 513) }},
		// Control characters take six bytes each in a notification's
		// JSON: a route of them would not fit PublishMany's payload.
		{"instance", false, func(r *flags.Route) { r.Instance = "pg\x01a" }},
		{"host", false, func(r *flags.Route) { r.Endpoint.Host = "10.0.0.1\x01" }},
		{"move", false, func(r *flags.Route) { r.Move = strings.Repeat("\x01", 512) }},
		{"epoch", true, func(r *flags.Route) { r.Epoch = 0 }},
		{"epoch", false, func(r *flags.Route) { r.Epoch = -1 }},
	} {
		r := good
		c.change(&r)
		err := r.Validate()
		switch {
		case c.ok && err != nil:
			t.Errorf("%s at its limit: %v; want it accepted", c.field, err)
		case !c.ok && (!errors.Is(err, flags.ErrInvalidRoute) || !strings.Contains(err.Error(), c.field)):
			t.Errorf("a bad %s (%s): %v; want ErrInvalidRoute naming %s", c.field, r, err, c.field)
		}
	}

	ctx := context.Background()
	p := flags.NewMemoryProvider()
	for _, c := range []struct {
		tenant string
		ok     bool
	}{
		{"", false},
		{strings.Repeat("t", 200), true},
		{strings.Repeat("t", 201), false},
		{"t\n1", false},
		{"t\x7f1", false},
	} {
		err := p.Publish(ctx, c.tenant, good)
		switch {
		case c.ok && err != nil:
			t.Errorf("tenant ID of %d bytes: %v; want it accepted", len(c.tenant), err)
		case !c.ok && (!errors.Is(err, flags.ErrInvalidRoute) || !strings.Contains(err.Error(), "tenant ID")):
			t.Errorf("tenant ID %q: %v; want ErrInvalidRoute naming the tenant ID", c.tenant, err)
		}
	}
}
