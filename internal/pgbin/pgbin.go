package pgbin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrNotFound is returned when no directory holds the programs asked
// for; the error is a *NotFoundError, which says where Find looked.
var ErrNotFound = errors.New("PostgreSQL programs not found")

// NotFoundError says where Find looked for programs in vain.
type NotFoundError struct {
	// Where is what was tried and what was missing, for a message: "in
	// /opt/pg/bin: no initdb", or "no directory with initdb, postgres
	// (looked in PATH, ...)".
	Where string
}

func (e *NotFoundError) Error() string { return ErrNotFound.Error() + " " + e.Where }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// debianGlob is where Debian and Ubuntu install each major version,
// without putting it on PATH (PATH has a version-picking wrapper).
const debianGlob = "/usr/lib/postgresql/*/bin"

// Find returns the directory that holds every one of programs, looking,
// in this order, at:
//
//  1. explicit, if not empty: it must hold them, and nothing else is
//     tried;
//  2. the directories of PATH, in order: the directory where the first
//     program found there really lives (symbolic links followed, so that
//     its siblings are found beside it even when only it is linked into
//     PATH); a match whose real directory lacks the others, such as
//     Debian's pg_wrapper, is passed over;
//  3. the output of `pg_config --bindir`;
//  4. the newest /usr/lib/postgresql/*/bin (by major version).
//
// The first directory that holds every program, each executable, wins.
func Find(explicit string, programs ...string) (string, error) {
	if len(programs) == 0 {
		return "", errors.New("pgbin: Find needs the names of the programs to find")
	}
	if explicit != "" {
		if err := holds(explicit, programs); err != nil {
			return "", &NotFoundError{Where: fmt.Sprintf("in %s: %v", explicit, err)}
		}
		return explicit, nil
	}
	var tried []string
	try := func(dir, how string) bool {
		if holds(dir, programs) == nil {
			return true
		}
		tried = append(tried, dir+how)
		return false
	}
	if dir, ok := onPath(programs); ok {
		return dir, nil
	}
	tried = append(tried, "PATH")
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); try(dir, " (pg_config --bindir)") {
			return dir, nil
		}
	} else {
		tried = append(tried, "pg_config --bindir")
	}
	if dir := newestDebian(); dir != "" {
		if try(dir, "") {
			return dir, nil
		}
	} else {
		tried = append(tried, debianGlob)
	}
	return "", &NotFoundError{Where: fmt.Sprintf("(no directory with %s; looked in %s)",
		strings.Join(programs, ", "), strings.Join(tried, ", "))}
}

// onPath returns the first directory where programs[0], found on PATH,
// really lives (symbolic links followed) with every other program beside
// it. A match whose real directory lacks them, such as Debian's
// pg_wrapper, is passed over for the next directory of PATH.
func onPath(programs []string) (string, bool) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if !filepath.IsAbs(dir) {
			continue // the current directory is never searched
		}
		p := filepath.Join(dir, programs[0])
		if executable(p) != nil {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue
		}
		if dir := filepath.Dir(real); holds(dir, programs) == nil {
			return dir, true
		}
	}
	return "", false
}

// holds reports what dir lacks of programs, or nil.
func holds(dir string, programs []string) error {
	for _, name := range programs {
		if err := executable(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

func executable(path string) error {
	info, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("no %s", filepath.Base(path))
	case info.IsDir() || info.Mode()&0o111 == 0:
		return fmt.Errorf("%s is not executable", filepath.Base(path))
	}
	return nil
}

// newestDebian returns the bin directory of the highest major version
// under /usr/lib/postgresql, or "".
func newestDebian() string {
	matches, _ := filepath.Glob(debianGlob)
	sort.Slice(matches, func(i, j int) bool { return majorOfDir(matches[i]) > majorOfDir(matches[j]) })
	if len(matches) == 0 {
		return ""
	}
	return matches[0]
}

// majorOfDir reads the version out of /usr/lib/postgresql/<version>/bin.
func majorOfDir(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

var versionNumber = regexp.MustCompile(`\d+`)

// Major returns the major version of program in dir, as its --version
// prints it ("pg_dump (PostgreSQL) 15.8" is 15).
func Major(ctx context.Context, dir, program string) (int, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(dir, program), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("pgbin: run %s --version in %s: %w", program, dir, err)
	}
	m := versionNumber.FindString(string(out))
	if m == "" {
		return 0, fmt.Errorf("pgbin: %s --version printed %q, with no version", program, strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(m)
}
