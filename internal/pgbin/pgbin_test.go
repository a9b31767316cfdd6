package pgbin_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/internal/pgbin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	serverPrograms = []string{"initdb", "postgres"}    // what localpg needs
	clientPrograms = []string{"pg_dump", "pg_restore"} // what replica/logical needs
)

// install writes fake PostgreSQL programs of major version major into a
// new directory and returns it.
func install(t *testing.T, major string, programs ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range programs {
		script := "#!/bin/sh\necho '" + p + " (PostgreSQL) " + major + ".3'\n"
		if err := os.WriteFile(filepath.Join(dir, p), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestOnePrecedence: with PATH holding one installation, the servers'
// finder (localpg) and the schema copy's (replica/logical) resolve the
// same directory, and so the same major version, whatever else is
// installed under /usr/lib/postgresql.
func TestOnePrecedence(t *testing.T) {
	dir := install(t, "42", "initdb", "postgres", "pg_dump", "pg_restore", "pg_basebackup")
	t.Setenv("PATH", dir)
	for _, programs := range [][]string{serverPrograms, clientPrograms} {
		got, err := pgbin.Find("", programs...)
		if err != nil || got != dir {
			t.Errorf("Find(%v) = %q, %v; want PATH's %q", programs, got, err, dir)
		}
	}
	if m, err := pgbin.Major(context.Background(), dir, "pg_dump"); err != nil || m != 42 {
		t.Errorf("Major = %d, %v; want 42", m, err)
	}
}

// TestPathFollowsLinks: a program linked into PATH is found where it
// lives, with its siblings; a link to something that lives alone (a
// version-picking wrapper) is passed over for the next PATH directory.
func TestPathFollowsLinks(t *testing.T) {
	real := install(t, "17", "pg_dump", "pg_restore")
	linked := t.TempDir()
	if err := os.Symlink(filepath.Join(real, "pg_dump"), filepath.Join(linked, "pg_dump")); err != nil {
		t.Fatal(err)
	}
	wrapperDir := install(t, "0", "pg_wrapper")
	wrapped := t.TempDir()
	for _, p := range clientPrograms {
		if err := os.Symlink(filepath.Join(wrapperDir, "pg_wrapper"), filepath.Join(wrapped, p)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", strings.Join([]string{wrapped, linked}, string(os.PathListSeparator)))
	if got, err := pgbin.Find("", clientPrograms...); err != nil || got != real {
		t.Errorf("Find = %q, %v; want %q, where the linked pg_dump lives", got, err, real)
	}
}

// TestExplicit: an explicit directory is the only one tried, and one that
// lacks a program is an error naming it.
func TestExplicit(t *testing.T) {
	dir := install(t, "15", "pg_dump")
	t.Setenv("PATH", install(t, "16", "pg_dump", "pg_restore"))
	_, err := pgbin.Find(dir, clientPrograms...)
	if !errors.Is(err, pgbin.ErrNotFound) || !strings.Contains(err.Error(), "pg_restore") || !strings.Contains(err.Error(), dir) {
		t.Errorf("explicit directory without pg_restore: %v; want ErrNotFound naming it and the directory", err)
	}
	full := install(t, "15", clientPrograms...)
	if got, err := pgbin.Find(full, clientPrograms...); err != nil || got != full {
		t.Errorf("Find(explicit) = %q, %v", got, err)
	}
	if _, err := pgbin.Find(""); err == nil {
		t.Error("Find without programs: no error")
	}
}
