package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/fleet"
)

// TestParseLimits reads thresholds as an operator writes them, and
// refuses, naming the flag, what it cannot read.
func TestParseLimits(t *testing.T) {
	for in, want := range map[string]fleet.Limits{
		"tenants=100":                 {MaxTenants: 100},
		"files=900, bytes=10GiB":      {MaxFiles: 900, MaxBytes: 10 << 30},
		"BYTES=1.5MiB":                {MaxBytes: 3 << 19},
		"bytes=2GB,tenants=3,files=4": {MaxBytes: 2e9, MaxTenants: 3, MaxFiles: 4},
		"bytes=1048576":               {MaxBytes: 1 << 20},
		"bytes=512 kB":                {MaxBytes: 512e3},
	} {
		got, err := parseLimits("threshold", in)
		if err != nil || got != want {
			t.Errorf("parseLimits(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tenants", "tenants=", "tenants=-1", "tenants=0", "files=1.5", "bytes=1XB",
		"weight=3", "tenants=1,tenants=2", "bytes=99999999999TiB"} {
		_, err := parseLimits("threshold", in)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--threshold") {
			t.Errorf("parseLimits(%q): %v, want a usage error naming --threshold", in, err)
		}
	}
}
