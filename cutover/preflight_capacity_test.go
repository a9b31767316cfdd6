package cutover_test

import (
	"context"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/cutover/cutovertest"
	"github.com/daisychain-db/daisychain/fleet"
)

// TestPreflightCapacityCountsWhatIsOnDisk: the target's capacity is what
// its disk holds, a copy fenced by an earlier move included, and checking
// it opens one connection to the target however many databases it holds.
func TestPreflightCapacityCountsWhatIsOnDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := cutovertest.StartFleet(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.AddTenant(ctx, "acme", "acme", "pg-a", "CREATE TABLE items (id int)"); err != nil {
		t.Fatal(err)
	}
	pgb := f.Instances["pg-b"]
	conn, err := pgb.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{"CREATE DATABASE serving", "CREATE DATABASE fenced_copy",
		// What a finished move leaves on its source until Retire.
		"ALTER DATABASE fenced_copy WITH ALLOW_CONNECTIONS false",
		"ALTER SYSTEM SET log_connections = on", "SELECT pg_reload_conf()"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	mover, err := f.Mover(nil)
	if err != nil {
		t.Fatal(err)
	}
	// dryRun returns the capacity problems of moving acme to pg-b under
	// the limits, and how many connections pg-b saw.
	dryRun := func(limits fleet.Limits) (capacity []string, opened int) {
		t.Helper()
		inst, err := f.Catalog.Instance(ctx, "pg-b")
		if err != nil {
			t.Fatal(err)
		}
		inst.Limits = limits
		if err := f.Catalog.RegisterInstance(ctx, inst); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(pgb.Log(), "connection authorized:")
		p, err := mover.DryRun(ctx, cutover.Request{Tenant: "acme", Target: "pg-b"})
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range p.Problems {
			if strings.HasPrefix(pr, "capacity") {
				capacity = append(capacity, pr)
			}
		}
		return capacity, strings.Count(pgb.Log(), "connection authorized:") - before
	}

	_, unlimited := dryRun(fleet.Limits{})
	// serving, fenced_copy and acme make three databases.
	if problems, _ := dryRun(fleet.Limits{MaxTenants: 2}); len(problems) != 1 || !strings.Contains(problems[0], "3 databases, limit 2") {
		t.Errorf("capacity problems with the fenced copy on the target and room for 2: %q, want 3 databases over the limit", problems)
	}
	problems, limited := dryRun(fleet.Limits{MaxTenants: 3, MaxFiles: 1 << 30, MaxBytes: 1 << 40})
	if len(problems) != 0 {
		t.Errorf("capacity problems with room: %q", problems)
	}
	if limited-unlimited != 1 {
		t.Errorf("checking the target's capacity opened %d connections to it, want 1", limited-unlimited)
	}
}
