package cutover

import (
	"context"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/fleet"
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

// TestAdminConnectionAvoidsFencedDatabases: an admin connection never sits
// in a database the window fences; when Admin names one and "postgres" is
// fenced too, the error says to name another database, before any
// connection is tried, without the password.
func TestAdminConnectionAvoidsFencedDatabases(t *testing.T) {
	inst := fleet.Instance{ID: "src", Admin: "postgres://admin:s3cret@127.0.0.1:1/tenant"}
	_, err := connectAdmin(context.Background(), inst, "tenant", "postgres")
	if err == nil || !strings.Contains(err.Error(), `"postgres"`) || !strings.Contains(err.Error(), "name another database in Admin") {
		t.Errorf("connectAdmin with Admin's database and postgres fenced: %v, want an error saying to name another database", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "connect to") {
		t.Errorf("connectAdmin tried to connect: %v", err)
	}
}
