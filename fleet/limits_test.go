package fleet_test

import (
	"testing"

	"github.com/daisychain-db/daisychain/fleet"
)

// Limits print as drain's plans show a threshold, only the set fields.
func TestLimitsString(t *testing.T) {
	for l, want := range map[fleet.Limits]string{
		{}:                                 "no limit",
		{MaxFiles: 900}:                    "files <= 900",
		{MaxTenants: 4, MaxBytes: 1 << 30}: "tenants <= 4, bytes <= 1.0 GiB",
		{MaxFiles: 1, MaxTenants: 2, MaxBytes: 3}: "files <= 1, tenants <= 2, bytes <= 3 B",
	} {
		if got := l.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", l, got, want)
		}
		if l.IsZero() != (l == fleet.Limits{}) {
			t.Errorf("%#v.IsZero() = %v", l, l.IsZero())
		}
	}
}
