package flags_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/flags"
)

var sample = flags.Route{
	Instance: "pg-a",
	Endpoint: flags.Endpoint{Host: "10.0.0.1", Port: 5432, Database: "tenant_1"},
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
		if !errors.Is(err, flags.ErrInvalidRoute) {
			t.Errorf("DecodeRoute(%#v) = %v, want ErrInvalidRoute", tc.v, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("DecodeRoute(%#v) = %q, want it to mention %q", tc.v, err, w)
			}
		}
	}
}
