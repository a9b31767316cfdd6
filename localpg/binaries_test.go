package localpg_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/localpg"
)

// TestFindBinDirFollowsPath: an installation on PATH wins over the newest
// /usr/lib/postgresql/*/bin, as it does for replica/logical's pg_dump (the
// order is pgbin.Find's, tested there with both sets of programs).
func TestFindBinDirFollowsPath(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"initdb", "postgres"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	if got, err := localpg.FindBinDir(""); err != nil || got != dir {
		t.Errorf("FindBinDir = %q, %v; want PATH's %q", got, err, dir)
	}
	empty := t.TempDir()
	if _, err := localpg.FindBinDir(empty); !errors.Is(err, localpg.ErrBinariesNotFound) ||
		!strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "Config.BinDir") {
		t.Errorf("an empty BinDir: %v; want ErrBinariesNotFound naming the directory and Config.BinDir", err)
	}
}
