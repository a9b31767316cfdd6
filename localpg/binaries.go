package localpg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrBinariesNotFound is returned when the PostgreSQL server binaries
// cannot be found. The error wrapping it says where it looked and how to
// install them.
var ErrBinariesNotFound = errors.New("localpg: PostgreSQL server binaries not found")

const installHint = "install the PostgreSQL server package " +
	"(Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; " +
	"macOS: brew install postgresql)"

// requiredBinaries are the programs an instance needs; pg_dump and friends
// are looked up by the packages that use them, in the same directory.
var requiredBinaries = []string{"initdb", "postgres"}

// FindBinDir returns the directory holding the PostgreSQL server binaries
// (initdb, postgres, pg_ctl, pg_dump, pg_restore, pg_basebackup). It looks,
// in order, at explicit (if not empty), the directories of PATH, the
// output of `pg_config --bindir`, and the newest /usr/lib/postgresql/*/bin.
func FindBinDir(explicit string) (string, error) {
	if explicit != "" {
		if err := checkBinDir(explicit); err != nil {
			return "", fmt.Errorf("%w in %s (Config.BinDir): %v: %s", ErrBinariesNotFound, explicit, err, installHint)
		}
		return explicit, nil
	}
	var tried []string
	if p, err := exec.LookPath("initdb"); err == nil {
		// Follow links so that pg_dump etc. are found beside the real
		// binary even when only initdb is linked into PATH.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if checkBinDir(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir)
	} else {
		tried = append(tried, "PATH")
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if checkBinDir(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir+" (pg_config --bindir)")
	} else {
		tried = append(tried, "pg_config --bindir")
	}
	if dir := newestDebianBinDir(); dir != "" {
		if checkBinDir(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir)
	} else {
		tried = append(tried, "/usr/lib/postgresql/*/bin")
	}
	return "", fmt.Errorf("%w (looked in %s): %s or set Config.BinDir",
		ErrBinariesNotFound, strings.Join(tried, ", "), installHint)
}

func checkBinDir(dir string) error {
	for _, name := range requiredBinaries {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("no %s", name)
		}
		if info.IsDir() || info.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", name)
		}
	}
	return nil
}

// newestDebianBinDir returns the bin directory of the highest major
// version under /usr/lib/postgresql, where Debian and Ubuntu install the
// server without putting it on PATH.
func newestDebianBinDir() string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool {
		return majorOf(matches[i]) > majorOf(matches[j])
	})
	if len(matches) == 0 {
		return ""
	}
	return matches[0]
}

func majorOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}
