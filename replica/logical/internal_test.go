package logical

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
)

func TestFingerprintSeesDDL(t *testing.T) {
	t.Parallel()
	inst := localpgtest.Start(t, nil)
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	steps := []string{
		`CREATE TABLE "Tab ""X"" Ä" (id int PRIMARY KEY, v text)`,
		`ALTER TABLE "Tab ""X"" Ä" ADD COLUMN w int`,
		`ALTER TABLE "Tab ""X"" Ä" ALTER COLUMN v SET NOT NULL`,
		`CREATE INDEX i ON "Tab ""X"" Ä" (v)`,
		`CREATE TYPE mood AS ENUM ('a')`,
		`ALTER TYPE mood ADD VALUE 'b'`,
		`CREATE SCHEMA s2`,
		`CREATE VIEW s2.v AS SELECT 1 AS one`,
		`CREATE OR REPLACE VIEW s2.v AS SELECT 1 AS one, 2 AS two`,
		`CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2'`,
		`ALTER TABLE "Tab ""X"" Ä" ADD CONSTRAINT c CHECK (id > 0)`,
		`CREATE SEQUENCE s2.seq`,
		`ALTER TABLE "Tab ""X"" Ä" REPLICA IDENTITY FULL`,
		`ALTER TABLE "Tab ""X"" Ä" ADD COLUMN "a long column name, longer than a name" text`,
		`ALTER TABLE "Tab ""X"" Ä" ADD COLUMN z int`, // beyond 63 bytes of the definition
		`ALTER TABLE "Tab ""X"" Ä" SET UNLOGGED`,     // no longer replicated
	}
	prev, err := fingerprint(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range steps {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		now, err := fingerprint(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		err = driftError(prev, now)
		if !errors.Is(err, replica.ErrSchemaDrift) {
			t.Errorf("%s: not detected", q)
		} else {
			t.Logf("%s: %v", q, strings.TrimPrefix(err.Error(), replica.ErrSchemaDrift.Error()))
		}
		prev = now
	}
}

func TestConninfo(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p%40ss@h:5433/db%20x?sslmode=disable": `dbname='db x' host='h' password='p@ss' port='5433' sslmode='disable' user='u'`,
		`host=h port=1 dbname='a \'b\' c' password=x\ y`:    `dbname='a \'b\' c' host='h' password='x y' port='1'`,
		"postgresql://h1:1,h2:2/d":                          `dbname='d' host='h1,h2' port='1,2'`,
	} {
		ci, err := parseConninfo(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := ci.String(); got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
		back, err := parseConninfo(ci.String())
		if err != nil || back.String() != want {
			t.Errorf("round trip of %s: %v %s", want, err, back)
		}
	}
	if _, err := parseConninfo("host='unterminated"); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestObjectName(t *testing.T) {
	seen := map[string]bool{}
	for _, id := range []string{"a", "A", `tenant "Größe"/1`, strings.Repeat("x", 200), strings.Repeat("x", 199) + "y", ""} {
		n := objectName(id)
		if len(n) > 63 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Errorf("%q -> %q is not a valid slot name", id, n)
		}
		if seen[n] {
			t.Errorf("%q -> %q collides", id, n)
		}
		seen[n] = true
	}
}

func TestPosition(t *testing.T) {
	p, err := replica.ParsePosition("16/B374D848")
	if err != nil || p.String() != "16/B374D848" || p != 0x16B374D848 {
		t.Errorf("%v %v", p, err)
	}
	if _, err := replica.ParsePosition("nope"); err == nil {
		t.Error("accepted nope")
	}
}

// Cancelling a program pgTool runs ends the processes it forked too (as
// pg_restore --jobs does), not the program alone. The program here is a
// shell script standing in for pg_restore: it starts a child and waits.
func TestPgToolCancelEndsProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := "#!/bin/sh\nsleep 300 &\necho $! > " + pidFile + "\nwait\n"
	if err := os.WriteFile(filepath.Join(dir, "pg_restore"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pgTool(ctx, dir, "pg_restore", conninfo{"dbname": "x"}) }()
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("the script did not start its child")
		}
	}
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	cancel()
	// The group ends on SIGTERM: pgTool returns without waiting out
	// toolWaitDelay (the child holds the program's stderr open while it
	// lives), and the child is gone.
	select {
	case err := <-done:
		if err == nil {
			t.Error("pgTool succeeded although cancelled")
		}
	case <-time.After(toolWaitDelay):
		t.Fatal("pgTool still waits for the program's child after the cancel")
	}
	for deadline := time.Now().Add(5 * time.Second); alive(child); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the program's child outlived the cancel")
		}
	}
}

// alive reports whether process pid runs (exists and is not a zombie
// waiting for a parent that does not reap).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust kill
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

func TestSplitGUCList(t *testing.T) {
	for in, want := range map[string][]string{
		`"$user", public`:              {"$user", "public"},
		`a,b ,  c`:                     {"a", "b", "c"},
		`"Weird, ""Schema""", x`:       {`Weird, "Schema"`, "x"},
		`""`:                           {""},
		`" padded "`:                   {" padded "},
		`'$libdir/plugins/x', plain_y`: {"'$libdir/plugins/x'", "plain_y"},
	} {
		if got := splitGUCList(in); !slices.Equal(got, want) {
			t.Errorf("splitGUCList(%q) = %q, want %q", in, got, want)
		}
	}
}

// What a stream fails with, a program that failed and a database that
// refuses connections or is gone end a retry at once; a lost connection
// and errTryAgain do not.
func TestTransient(t *testing.T) {
	t.Parallel()
	exitErr := exec.Command("false").Run()
	lost := &pgconn.PgError{Code: "57P01"}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"slot lost", fmt.Errorf("%w: slot x", replica.ErrSlotLost), false},
		{"not streaming", replica.ErrNotStreaming, false},
		{"closed", fmt.Errorf("%w (finished)", replica.ErrClosed), false},
		{"WAL limit", replica.ErrWALLimit, false},
		{"not ready", replica.ErrNotReady, false},
		{"pg_restore failed", fmt.Errorf("restore: %w", exitErr), false},
		{"fenced", &pgconn.PgError{Code: "55000"}, false},
		{"database gone", &pgconn.PgError{Code: "3D000"}, false},
		{"terminated", fmt.Errorf("read: %w", lost), true},
		{"try again", fmt.Errorf("%w: a slot was dropped concurrently", errTryAgain), true},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%s: %v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
