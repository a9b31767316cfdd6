package pgbouncer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/daisychain-db/daisychain/flags"
)

// fileHeader opens the file: it says who owns it, and opens the
// [databases] section whatever section of pgbouncer.ini includes it.
const fileHeader = `; Written by daisychain's PgBouncer follower (flags/pgbouncer), which
; keeps these entries equal to the tenants' routes: edits are overwritten.
; pgbouncer.ini includes it with %include. No passwords here: PgBouncer
; authenticates with its own auth_file or auth_query.
[databases]
`

// entry is one [databases] line the Follower wants.
type entry struct {
	tenant string
	route  flags.Route
}

// plainName is a database name PgBouncer 1.18 reads as a key without
// quoting (it takes no quoted keys); plainValue a value that needs no
// single quotes.
var (
	plainName  = regexp.MustCompile(`^[A-Za-z0-9_.$-]+$`)
	plainValue = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)
)

// checkName refuses a PgBouncer database name the file cannot hold.
func checkName(name string) error {
	switch {
	case !plainName.MatchString(name):
		return fmt.Errorf("PgBouncer database name %q: PgBouncer's configuration takes only letters, digits and _.$- in a name (set Config.Database)", name)
	case name == "pgbouncer":
		return errors.New(`PgBouncer database name "pgbouncer" is the admin console's (set Config.Database)`)
	}
	return nil
}

// quoteValue quotes a connection-string value as PgBouncer reads it: in
// single quotes, a quote doubled.
func quoteValue(v string) string {
	if plainValue.MatchString(v) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// renderLine is the entry's line: host, port and dbname from the route,
// then the options, sorted.
func renderLine(name string, r flags.Route, options map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s = host=%s port=%d dbname=%s", name, quoteValue(r.Endpoint.Host), r.Endpoint.Port, quoteValue(r.Endpoint.Database))
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, quoteValue(options[k]))
	}
	return b.String()
}

// render is the file's content for lines (database name → line).
func render(lines map[string]string) []byte {
	names := make([]string, 0, len(lines))
	for n := range lines {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(fileHeader)
	for _, n := range names {
		b.WriteString(lines[n])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// readLines reads the file's entries (database name → line) and its
// content; a file that does not exist yet has none.
func readLines(path string) (map[string]string, []byte, error) {
	content, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read Config.File: %w", err)
	}
	lines := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' || line[0] == '[' {
			continue
		}
		if name, _, ok := strings.Cut(line, "="); ok {
			lines[strings.TrimSpace(name)] = line
		}
	}
	return lines, content, sc.Err()
}

// writeAtomically replaces path with content: a temporary file in the
// same directory, written and synced, renamed over it, and the directory
// synced, so that PgBouncer (and a crash) sees the old file or the new
// one, never a part. The new file keeps the old one's mode (0644 if there
// was none: it holds no secret, and PgBouncer may run as another user).
func writeAtomically(path string, content []byte) (err error) {
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write Config.File: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.Remove(tmp.Name()))
		}
	}()
	if _, err := tmp.Write(content); err != nil {
		return errors.Join(fmt.Errorf("write Config.File: %w", err), tmp.Close())
	}
	if err := tmp.Chmod(mode); err != nil {
		return errors.Join(fmt.Errorf("write Config.File: %w", err), tmp.Close())
	}
	if err := tmp.Sync(); err != nil {
		return errors.Join(fmt.Errorf("write Config.File: sync: %w", err), tmp.Close())
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write Config.File: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write Config.File: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil // renamed: only the directory's durability is unconfirmed
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}

// endpointOf is how SHOW DATABASES shows an entry: host, port, and the
// server database.
func endpointOf(r flags.Route) string {
	return r.Endpoint.Host + ":" + strconv.Itoa(r.Endpoint.Port) + "/" + r.Endpoint.Database
}
