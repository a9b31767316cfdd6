// Package localpgtest starts localpg instances for tests: each is stopped
// and removed in t.Cleanup (which runs even when the test panics), and its
// server log is printed when the test failed.
package localpgtest

import (
	"context"
	"testing"

	"github.com/daisychain-db/daisychain/localpg"
)

// Start starts an instance for the test, or fails it. A nil cfg means
// localpg's defaults.
func Start(tb testing.TB, cfg *localpg.Config) *localpg.Instance {
	tb.Helper()
	inst, err := localpg.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("localpgtest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("localpgtest: server log of %s:\n%s", inst, inst.Log())
		}
		if err := inst.Close(); err != nil {
			tb.Errorf("localpgtest: %v", err)
		}
	})
	return inst
}

// CreateDatabase creates a database on inst, or fails the test.
func CreateDatabase(tb testing.TB, inst *localpg.Instance, name string) {
	tb.Helper()
	if err := inst.CreateDatabase(context.Background(), name); err != nil {
		tb.Fatal(err)
	}
}

// HasDatabase reports whether inst has the database, fenced (refusing
// connections) or not, or fails the test.
func HasDatabase(tb testing.TB, inst *localpg.Instance, name string) bool {
	tb.Helper()
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		tb.Fatalf("localpgtest: %v", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		tb.Fatalf("localpgtest: %v", err)
	}
	return exists
}
