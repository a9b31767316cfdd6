package cutover

import (
	"strings"
	"testing"
)

// TestRebuiltPgBouncerFenceKeepsItsPassword: the journal keeps a
// PgBouncer fence without its password; Resume takes the password back
// from the configured fence on the same console, whether it was
// configured by value or by pointer.
func TestRebuiltPgBouncerFenceKeepsItsPassword(t *testing.T) {
	const admin = "postgres://pgbouncer:s3cret@127.0.0.1:6432/pgbouncer"
	for _, configured := range []Fence{PgBouncerFence{Admin: admin}, &PgBouncerFence{Admin: admin}} {
		records, err := recordFences([]Fence{configured}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(records) != 1 || strings.Contains(records[0].Admin, "s3cret") {
			t.Fatalf("the journal's record: %+v", records)
		}
		m := &Mover{cfg: Config{Fences: []Fence{configured}}}
		rebuilt, err := m.rebuildFences(records)
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := rebuilt[0].(PgBouncerFence); !ok || f.Admin != admin {
			t.Errorf("configured as %T: rebuilt %#v, want the configured console with its password", configured, rebuilt[0])
		}
	}
}
