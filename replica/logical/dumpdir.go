package logical

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A stream keeps its schema dump in a directory of the temporary
// directory until its schema is complete. A process killed meanwhile
// cannot remove it, so each directory names its owner process in a file,
// and a Provider's first Start (or Abort) removes the directories whose
// owner is gone.
const (
	dumpPrefix    = "daisychain-schema-"
	dumpOwnerFile = "owner"
	// dumpOrphanAge: a directory without an owner file (its process was
	// killed right after creating it) is removed once it is this old.
	dumpOrphanAge = 10 * time.Minute
)

// newDumpDir creates a dump directory for the stream named name, owned
// by this process.
func newDumpDir(name string) (string, error) {
	dir, err := os.MkdirTemp("", dumpPrefix+name+"-")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, dumpOwnerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return "", errors.Join(err, os.RemoveAll(dir))
	}
	return dir, nil
}

// sweepDumpDirs removes, on the Provider's first call, the dump
// directories whose owner process is gone. What it cannot remove it
// leaves, with a warning.
func (p *Provider) sweepDumpDirs(log *slog.Logger) {
	p.sweepOnce.Do(func() { removeStaleDumps(log) })
}

func removeStaleDumps(log *slog.Logger) {
	// Stream names begin with "dc_"; directories of older versions (no
	// name, no owner file) are not judged.
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dumpPrefix+"dc_*"))
	for _, dir := range dirs {
		if !stale(dir) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("logical: cannot remove the schema dump of a run that died", "dir", dir, "err", err)
			continue
		}
		log.Info("logical: removed the schema dump of a run that died", "dir", dir)
	}
}

// stale reports whether the dump directory's owner process is gone.
func stale(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, dumpOwnerFile))
	if err != nil {
		fi, serr := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist) && serr == nil && fi.IsDir() && time.Since(fi.ModTime()) > dumpOrphanAge
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false // not ours to judge
	}
	if pid == os.Getpid() {
		return false
	}
	// Signal 0 only checks: no such process is ESRCH; EPERM means it
	// exists under another user.
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
