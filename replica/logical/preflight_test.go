package logical_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// startRefused starts sp, expects a preflight error containing every
// want, and checks that nothing was left behind.
func startRefused(t *testing.T, sp replica.Spec, src, dst *localpg.Instance, targetExisted bool, want ...string) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	report, err := provider.Preflight(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if report.OK() {
		t.Fatal("preflight found no problem")
	}
	st, err := provider.Start(ctx, sp)
	if err == nil {
		_ = st.Abort(ctx)
		t.Fatal("Start succeeded")
	}
	if !isErr(err, replica.ErrPreflight) {
		t.Fatalf("Start: %v, want ErrPreflight", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
	if report.Err().Error() != err.Error() {
		t.Errorf("Preflight and Start disagree:\n%v\n%v", report.Err(), err)
	}
	t.Log(err)
	if databaseExists(t, dst, sp.TargetDatabase) != targetExisted {
		t.Errorf("target database existence changed")
	}
	assertNoReplicationObjects(t, src, sp.SourceDatabase)
	assertNoReplicationObjects(t, dst)
}

func TestPreflightNoReplicaIdentity(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 10)
	execSQL(t, src, "t", `CREATE TABLE "Log Einträge" (at timestamptz, msg text)`, `INSERT INTO "Log Einträge" VALUES (now(), 'x')`)
	sp := spec("no-identity", src, "t", dst, "t")
	startRefused(t, sp, src, dst, false, "replica identity", `public."Log Einträge"`, "SetReplicaIdentityFull")

	// With the explicit option the table gets REPLICA IDENTITY FULL and
	// is streamed, updates and deletes included.
	sp.SetReplicaIdentityFull = true
	ctx := testCtx(t, 2*time.Minute)
	report, err := provider.Preflight(ctx, sp)
	if err != nil || !report.OK() || len(report.Notes) != 1 {
		t.Fatalf("preflight with SetReplicaIdentityFull: %v %+v", err, report)
	}
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	execSQL(t, src, "t", `UPDATE "Log Einträge" SET msg = 'y'`, `INSERT INTO "Log Einträge" VALUES (now(), 'z')`,
		`DELETE FROM "Log Einträge" WHERE msg = 'z'`)
	catchUp(t, st, time.Minute)
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, "t")
	assertNoReplicationObjects(t, dst)
}

func TestPreflightNonEmptyTarget(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 10)
	localpgtest.CreateDatabase(t, dst, "t")
	execSQL(t, dst, "t", `CREATE TABLE precious (id int PRIMARY KEY)`, `INSERT INTO precious VALUES (1)`)
	startRefused(t, spec("non-empty", src, "t", dst, "t"), src, dst, true, `target database "t"`, "not empty")
	if n := queryInt(t, dst, "t", `SELECT count(*) FROM precious`); n != 1 {
		t.Errorf("the non-empty target was written: %d rows", n)
	}
}

// wal_level=replica, an unlimited max_slot_wal_keep_size and a table
// without identity: the report lists all three. The explicit option, in
// the Spec or the Provider, accepts the unbounded WAL. A negative
// LongTransactionLimit, in either, is refused naming it, and changes
// nothing.
func TestPreflightWALLevel(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Settings: map[string]string{"wal_level": "replica", "max_slot_wal_keep_size": "-1"}})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 10)
	execSQL(t, src, "t", `CREATE TABLE nokey (v int)`)
	sp := spec("wal-level", src, "t", dst, "t")
	startRefused(t, sp, src, dst, false,
		"3 problem(s)", "wal_level=replica", "wal_level = logical", "public.nokey",
		"max_slot_wal_keep_size is -1", "ALTER SYSTEM SET max_slot_wal_keep_size", "AllowUnboundedSlotWAL")
	ctx := testCtx(t, time.Minute)
	allowing := &logical.Provider{AllowUnboundedSlotWAL: true}
	report, err := allowing.Preflight(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Problems) != 2 || strings.Contains(report.Err().Error(), "max_slot_wal_keep_size") {
		t.Errorf("with Provider.AllowUnboundedSlotWAL: %v", report.Err())
	}
	sp.AllowUnboundedSlotWAL = true
	report, err = provider.Preflight(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Problems) != 2 || strings.Contains(report.Err().Error(), "max_slot_wal_keep_size") {
		t.Errorf("with Options.AllowUnboundedSlotWAL: %v", report.Err())
	}

	negative := sp
	negative.LongTransactionLimit = -time.Second
	for _, c := range []struct {
		p     *logical.Provider
		sp    replica.Spec
		field string
	}{
		{provider, negative, "LongTransactionLimit -1s is negative"},
		{&logical.Provider{LongTransactionLimit: -time.Second}, sp, "Provider.LongTransactionLimit -1s is negative"},
		{&logical.Provider{CopyJobs: -1}, sp, "Provider.CopyJobs -1 is negative"},
		{&logical.Provider{CopyRangeSize: -8192}, sp, "Provider.CopyRangeSize -8192 is negative"},
	} {
		if _, err := c.p.Preflight(ctx, c.sp); !isErr(err, replica.ErrInvalidSpec) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Preflight with %s: %v, want ErrInvalidSpec naming it", c.field, err)
		}
		if st, err := c.p.Start(ctx, c.sp); !isErr(err, replica.ErrInvalidSpec) || !strings.Contains(err.Error(), c.field) {
			if err == nil {
				_ = st.Abort(ctx)
			}
			t.Errorf("Start with %s: %v, want ErrInvalidSpec naming it", c.field, err)
		}
	}
	if databaseExists(t, dst, sp.TargetDatabase) {
		t.Error("a refused Start created the target database")
	}
	assertNoReplicationObjects(t, src, sp.SourceDatabase)
	assertNoReplicationObjects(t, dst)
}

func TestPreflightBadConnection(t *testing.T) {
	t.Parallel()
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst", Password: "s3cret pass"})
	sp := spec("bad-conn", dst, "missing_db", dst, "t")
	sp.Target = dst.ConnStringAs("postgres", "wrong-password", "postgres")
	report, err := provider.Preflight(testCtx(t, time.Minute), sp)
	if err != nil {
		t.Fatal(err)
	}
	msg := report.Err().Error()
	for _, w := range []string{"source connection", "missing_db", "target connection"} {
		if !strings.Contains(msg, w) {
			t.Errorf("report does not mention %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "wrong-password") {
		t.Errorf("report shows a password:\n%s", msg)
	}
	if strings.Contains(sp.String(), "s3cret") {
		t.Error("Spec.String shows a password")
	}
}

// Roles the schema needs that the target lacks, and large objects: both
// refused, both named; NoOwner and AllowLargeObjects go on without them.
func TestPreflightRolesAndLargeObjects(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	execSQL(t, src, "postgres", `CREATE ROLE "App Owner"`, `CREATE ROLE reader`)
	execSQL(t, src, "t", `ALTER TABLE orders OWNER TO "App Owner"`, `GRANT SELECT ON `+qWeirdTable+` TO reader`,
		`SELECT lo_from_bytea(0, 'blob')`)
	sp := spec("roles", src, "t", dst, "t copy")
	startRefused(t, sp, src, dst, false, "2 problem(s)", "roles", `"App Owner", "reader"`, "NoOwner",
		"1 large objects", "AllowLargeObjects")

	sp.NoOwner, sp.AllowLargeObjects = true, true
	ctx := testCtx(t, 2*time.Minute)
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, st, replica.PhaseStreaming, time.Minute)
	catchUp(t, st, time.Minute)
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, "t")
	assertNoReplicationObjects(t, dst)
}

// Unlogged tables are not replicated: refused, named; with
// Options.SkipUnlogged the stream goes on, they are empty on the target,
// and Verify leaves them out.
func TestPreflightUnlogged(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	execSQL(t, src, "t", `CREATE UNLOGGED TABLE "Sitzungen Ä" (id int PRIMARY KEY, data text)`,
		`INSERT INTO "Sitzungen Ä" SELECT i, 'x' FROM generate_series(1, 10) i`)
	sp := spec("unlogged", src, "t", dst, "t")
	startRefused(t, sp, src, dst, false, "unlogged tables", `public."Sitzungen Ä"`, "SET LOGGED", "SkipUnlogged")

	sp.SkipUnlogged = true
	ctx := testCtx(t, 2*time.Minute)
	report, err := provider.Preflight(ctx, sp)
	if err != nil || !report.OK() || len(report.Notes) != 1 || !strings.Contains(report.Notes[0], `public."Sitzungen Ä"`) {
		t.Fatalf("preflight with SkipUnlogged: %v %+v", err, report)
	}
	st := startStreaming(t, sp)
	catchUp(t, st, time.Minute)
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, dst, "t", `SELECT count(*) FROM "Sitzungen Ä"`); n != 0 {
		t.Errorf("the unlogged table has %d rows on the target, want 0 (not replicated)", n)
	}
}

// A source database with subscriptions of its own is being filled by
// another move (or replication): preflight refuses it, naming them.
func TestPreflightSourceWithSubscriptions(t *testing.T) {
	t.Parallel()
	inst := localpgtest.Start(t, &localpg.Config{Name: "one"})
	createTenant(t, inst, "t", 10)
	execSQL(t, inst, "t", `CREATE SUBSCRIPTION "Filling it" CONNECTION 'dbname=elsewhere' PUBLICATION p
		WITH (connect = false, enabled = false, create_slot = false, slot_name = NONE)`)
	report, err := provider.Preflight(testCtx(t, time.Minute), spec("filled", inst, "t", inst, "copy"))
	if err != nil {
		t.Fatal(err)
	}
	if e := report.Err(); e == nil || !strings.Contains(e.Error(), `"Filling it"`) || !strings.Contains(e.Error(), "subscriptions") {
		t.Errorf("preflight of a source with a subscription: %v, want it named", e)
	}
	execSQL(t, inst, "t", `DROP SUBSCRIPTION "Filling it"`)
}

// TestPreflightLauncherPace: a target (PostgreSQL 15) whose
// wal_retrieve_retry_interval is the default 5s gets a note saying that
// it paces the start of new streams and how to lower it; one at localpg's
// 100ms gets none.
func TestPreflightLauncherPace(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	slow := localpgtest.Start(t, &localpg.Config{Name: "slow", Settings: map[string]string{"wal_retrieve_retry_interval": "5s"}})
	fast := localpgtest.Start(t, &localpg.Config{Name: "fast"})
	createTenant(t, src, "t", 10)
	for _, c := range []struct {
		dst  *localpg.Instance
		note bool
	}{{slow, true}, {fast, false}} {
		report, err := provider.Preflight(ctx, spec("pace", src, "t", c.dst, "t"))
		if err != nil || !report.OK() {
			t.Fatalf("preflight onto %s: %v, %v", c.dst.Name(), report.Err(), err)
		}
		noted := slices.ContainsFunc(report.Notes, func(n string) bool {
			return strings.Contains(n, "wal_retrieve_retry_interval is 5s") && strings.Contains(n, "ALTER SYSTEM SET wal_retrieve_retry_interval")
		})
		if noted != c.note {
			t.Errorf("preflight onto %s: notes %q, want the launcher's pace noted: %v", c.dst.Name(), report.Notes, c.note)
		}
	}
}
