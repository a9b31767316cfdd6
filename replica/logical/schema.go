package logical

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/daisychain-db/daisychain/internal/pgbin"
)

// userSchemas is the condition (on a pg_namespace aliased n) that selects
// the schemas a tenant owns.
const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema')
	AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

// notExtensionMember is the condition that the object with class
// classid and OID oidexpr does not belong to an extension (the extension
// creates those on the target).
func notExtensionMember(classid, oidexpr string) string {
	return fmt.Sprintf(`NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '%s'::regclass
		AND e.objid = %s AND e.deptype = 'e')`, classid, oidexpr)
}

// findBinDir returns the directory of pg_dump and pg_restore, found as
// localpg finds the server's (see pgbin.Find): explicit, else PATH, else
// pg_config --bindir, else the newest /usr/lib/postgresql/*/bin.
func findBinDir(explicit string) (string, error) {
	dir, err := pgbin.Find(explicit, "pg_dump", "pg_restore")
	if err != nil {
		return "", fmt.Errorf("logical: pg_dump/pg_restore: %w: install the PostgreSQL client package or set Provider.BinDir", err)
	}
	return dir, nil
}

// pgTool runs pg_dump or pg_restore against ci. The password travels in
// the environment, not on the command line, where other users could see
// it.
//
// The program runs in a process group of its own, and cancelling ctx
// sends SIGTERM to the whole group: pg_restore --jobs forks workers, which
// killing the parent alone would leave running, and on SIGTERM each of
// them cancels its query on the server (an index build would otherwise go
// on there until it ends). Whatever is left of the group when the
// leader and the output are done, or after toolWaitDelay, is killed.
func pgTool(ctx context.Context, binDir, program string, ci conninfo, args ...string) error {
	args = append(args, "--dbname="+ci.Without("password").String())
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, program), args...)
	cmd.Env = os.Environ()
	if pw, ok := ci["password"]; ok {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+pw)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	inGroup(cmd)
	err := cmd.Run()
	if ctx.Err() != nil && cmd.Process != nil {
		// Members that outlived the leader keep the group's ID in use,
		// so this reaches only them.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", program, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// toolWaitDelay is how long a cancelled program's process group has to
// exit after SIGTERM before it is killed.
const toolWaitDelay = 10 * time.Second

// inGroup makes cmd the leader of a new process group that its context's
// end terminates as a whole (see pgTool). The members share the leader's
// stderr, so Wait waits for them too, up to WaitDelay.
func inGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = toolWaitDelay
}

// dumpSchema writes the source database's schema (no publications or
// subscriptions) to file in pg_dump's custom format.
func dumpSchema(ctx context.Context, binDir string, src conninfo, file string) error {
	return pgTool(ctx, binDir, "pg_dump", src, "--format=custom", "--schema-only",
		"--no-publications", "--no-subscriptions", "--file="+file)
}

// tocList returns the table-of-contents lines of one section of the
// archive, as pg_restore -l prints them.
func tocList(ctx context.Context, binDir, file, section string) ([]string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_restore"), "--list", "--section="+section, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_restore --list: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, ";") {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// tocKey returns "catalog-oid/object-oid" of a TOC line ("12; 2606 16390
// CONSTRAINT public t t_pkey owner"): the only part that does not depend
// on how names with spaces are printed.
func tocKey(line string) string {
	_, rest, ok := strings.Cut(line, ";")
	if !ok {
		return ""
	}
	f := strings.Fields(rest)
	if len(f) < 2 {
		return ""
	}
	return f[0] + "/" + f[1]
}

// earlyObjects returns the TOC keys of the post-data objects restored
// before the data: primary keys and replica-identity indexes, which the
// apply worker needs to find rows fast.
func earlyObjects(ctx context.Context, q querier) (map[string]bool, error) {
	rows, err := q.Query(ctx, `
		SELECT '2606/' || c.oid FROM pg_constraint c JOIN pg_index i ON i.indexrelid = c.conindid
		WHERE c.contype = 'p' OR (c.contype = 'u' AND i.indisreplident)
		UNION ALL
		SELECT '1259/' || i.indexrelid FROM pg_index i
		WHERE i.indisreplident AND NOT EXISTS (SELECT 1 FROM pg_constraint c
			WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u'))`)
	if err != nil {
		return nil, err
	}
	keys, err := collect[string](rows)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, k := range keys {
		out[k] = true
	}
	return out, nil
}

// splitTOC writes the first restore list (the pre-data section plus the
// early post-data objects) and returns the rest of post-data, as TOC
// lines.
func splitTOC(ctx context.Context, binDir, file string, early map[string]bool) (first string, rest []string, err error) {
	pre, err := tocList(ctx, binDir, file, "pre-data")
	if err != nil {
		return "", nil, err
	}
	post, err := tocList(ctx, binDir, file, "post-data")
	if err != nil {
		return "", nil, err
	}
	for _, l := range post {
		if early[tocKey(l)] {
			pre = append(pre, l)
		} else {
			rest = append(rest, l)
		}
	}
	first = file + ".first.list"
	if err := os.WriteFile(first, []byte(strings.Join(pre, "\n")+"\n"), 0o600); err != nil {
		return "", nil, err
	}
	return first, rest, nil
}

// postItem is one post-data object and the tables whose data it needs
// (none: it waits for every table).
type postItem struct {
	line   string
	tables []string
	// key: a primary key or replica-identity index (marker.KeysAfterCopy),
	// which the apply worker needs before it applies changes.
	key bool
}

// tableDeps maps the TOC keys of indexes, constraints and triggers on
// plain tables to those tables (both tables of a foreign key), so each
// can be built as soon as its tables are copied.
func tableDeps(ctx context.Context, q querier) (map[string][]string, error) {
	const qualified = `(SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s AND c.relkind = 'r')`
	rows, err := q.Query(ctx, fmt.Sprintf(`
		SELECT '1259/' || i.indexrelid, ARRAY[`+qualified+`] FROM pg_index i
		UNION ALL
		SELECT '2606/' || co.oid, CASE WHEN co.confrelid = 0 THEN ARRAY[`+qualified+`]
			ELSE ARRAY[`+qualified+`, `+qualified+`] END
		FROM pg_constraint co WHERE co.conrelid <> 0
		UNION ALL
		SELECT '2620/' || t.oid, ARRAY[`+qualified+`] FROM pg_trigger t WHERE NOT t.tgisinternal`,
		"i.indrelid", "co.conrelid", "co.conrelid", "co.confrelid", "t.tgrelid"))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var key string
		var tables []*string
		if err := rows.Scan(&key, &tables); err != nil {
			return nil, err
		}
		var names []string
		for _, t := range tables {
			if t == nil { // not a plain table: built at the end
				names = nil
				break
			}
			names = append(names, *t)
		}
		if len(names) > 0 {
			out[key] = names
		}
	}
	return out, rows.Err()
}

func restoreArgs(noOwner bool, list, file string, extra ...string) []string {
	args := []string{"--exit-on-error", "--use-list=" + list}
	if noOwner {
		args = append(args, "--no-owner", "--no-privileges")
	}
	return append(append(args, extra...), file)
}
