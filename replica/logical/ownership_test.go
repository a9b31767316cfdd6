package logical_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/logical"
)

// userDatabases counts the databases on inst other than postgres and the
// templates.
func userDatabases(t testing.TB, inst *localpg.Instance) int64 {
	return queryInt(t, inst, "postgres", `SELECT count(*) FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')`)
}

// A slot and a publication that merely have the name the stream would
// give its own are not the stream's: Start refuses, naming them, and
// changes nothing; Abort leaves them.
func TestForeignSlotAndPublicationAreNotOurs(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	sp := spec("taken", src, "t", dst, "t")
	name := replica.ObjectName("dc", sp.ID)
	execSQL(t, src, "t", "CREATE PUBLICATION "+name+" FOR TABLE orders",
		"SELECT pg_create_logical_replication_slot('"+name+"', 'pgoutput')")
	ctx := testCtx(t, 2*time.Minute)

	st, err := provider.Start(ctx, sp)
	if err == nil {
		_ = st.Close()
		t.Fatal("Start succeeded over a foreign slot and publication")
	}
	if !isErr(err, replica.ErrPreflight) || !strings.Contains(err.Error(), "publication "+name) || !strings.Contains(err.Error(), "slot "+name) {
		t.Errorf("Start: %v, want ErrPreflight naming publication and slot %s", err, name)
	}
	if databaseExists(t, dst, "t") {
		t.Error("the refused Start created the target database")
	}
	if err := provider.Abort(ctx, sp); err != nil {
		t.Errorf("Abort: %v", err)
	}
	if n := queryInt(t, src, "postgres", `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, name); n != 1 {
		t.Error("the foreign slot is gone")
	}
	if n := queryInt(t, src, "t", `SELECT count(*) FROM pg_publication WHERE pubname = $1`, name); n != 1 {
		t.Error("the foreign publication is gone")
	}
}

// A target that stops for good during the initial copy: Abort drops the
// slot and the publication on the source anyway, and says what remains
// on the target; once the target is back, Abort removes that too.
func TestAbortWithTargetDown(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	sp := spec("target-down", src, "t", dst, "t")
	ctx := testCtx(t, 3*time.Minute)
	// A transaction that has written and stays open: the copy waits for
	// it to create its slot, and never ends.
	blocker, err := src.Connect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(ctx)
	if _, err := blocker.Exec(ctx, `BEGIN; INSERT INTO orders (kunde, amount) VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	st, err := provider.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := st.Progress(ctx); err != nil || p.Phase != replica.PhaseCopy {
		t.Fatalf("progress %+v, %v: want phase copy", p, err)
	}
	if err := dst.Stop(); err != nil {
		t.Fatal(err)
	}
	err = st.Abort(ctx)
	name := replica.ObjectName("dc", sp.ID)
	if err == nil || !strings.Contains(err.Error(), "subscription "+name) || !strings.Contains(err.Error(), `database "t"`) {
		t.Errorf("Abort with the target down: %v, want an error naming the subscription and database left on the target", err)
	}
	t.Log(err)
	assertNoReplicationObjects(t, src, "t")

	if err := dst.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(ctx); err != nil {
		t.Fatalf("Abort once the target is back: %v", err)
	}
	assertNoReplicationObjects(t, dst)
	if n := userDatabases(t, dst); n != 0 {
		t.Errorf("%d databases left on the target", n)
	}
}

// A start killed between CREATE DATABASE on the target and the marker
// that makes the database the stream's: Abort drops that database, and
// so does a Start that resumes the stream before it goes on.
func TestCrashAfterCreateDatabase(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	sp := spec("crash-after-create-database", src, "t", dst, "t")
	ctx := testCtx(t, 3*time.Minute)

	logical.CrashAt(sp.ID, logical.CrashDatabaseCreated)
	if _, err := provider.Start(ctx, sp); err == nil {
		t.Fatal("Start went past the crash point")
	}
	if n := userDatabases(t, dst); n != 1 {
		t.Fatalf("%d databases on the target after the crash, want the one created", n)
	}
	if err := provider.Abort(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if n := userDatabases(t, dst); n != 0 {
		t.Errorf("Abort left %d databases on the target", n)
	}
	assertNoReplicationObjects(t, src, "t")

	if _, err := provider.Start(ctx, sp); err == nil {
		t.Fatal("Start went past the crash point")
	}
	logical.CrashAt(sp.ID, "")
	st := startStreaming(t, sp)
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if n := userDatabases(t, dst); n != 0 {
		t.Errorf("Abort after the resumed Start left %d databases on the target", n)
	}
	assertNoReplicationObjects(t, src, "t")
}

// A run killed during its copy leaves its schema dump in the temporary
// directory: a Provider's first Start removes the dumps whose owner
// process is gone, and keeps those of live ones.
func TestStaleDumpDirsRemoved(t *testing.T) {
	t.Parallel()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mkdump := func(owner int) string {
		dir, err := os.MkdirTemp("", "daisychain-schema-dc_test_")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		for name, content := range map[string]string{"owner": strconv.Itoa(owner), "schema.dump": "x"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	left, live := mkdump(dead.Process.Pid), mkdump(os.Getpid())
	inst := localpgtest.Start(t, &localpg.Config{Name: "one"})
	createTenant(t, inst, "t", 10)
	startStreamingWith(t, &logical.Provider{PollInterval: provider.PollInterval}, spec("sweeper", inst, "t", inst, "copy"))
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dump of a dead run is still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the dump of a live run was removed: %v", err)
	}
}
