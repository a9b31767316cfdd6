package logical

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// What a database carries beyond its schema, which pg_dump without
// --create leaves out and a tenant may rely on: its owner, its privileges
// (GRANT CONNECT, CREATE, TEMPORARY ON DATABASE), and its settings
// (ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE ... SET). Encoding
// and locale are set when the stream creates the target database (see
// createTargetDB). Roles are the server's, not the database's: preflight
// names those the target lacks, and the stream creates none.

// dbProps are a database's properties.
type dbProps struct {
	owner    string
	acl      []aclItem     // coalesce(datacl, acldefault(...)): never empty
	settings []roleSetting // sorted by role
}

// aclItem is one privilege of a database's ACL.
type aclItem struct {
	grantee   string // "" is PUBLIC
	privilege string // CONNECT, CREATE, TEMPORARY
	grantable bool
}

// roleSetting is one row of pg_db_role_setting for the database.
type roleSetting struct {
	role   string   // "" for every role (ALTER DATABASE ... SET)
	config []string // name=value
}

// readDatabaseProps reads the properties of database db through q,
// connected to any database of its server (the catalogs are shared).
func readDatabaseProps(ctx context.Context, q querier, db string) (dbProps, error) {
	var p dbProps
	if err := q.QueryRow(ctx, `SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1`, db).Scan(&p.owner); err != nil {
		return p, fmt.Errorf("read the owner of database %q: %w", db, err)
	}
	rows, err := q.Query(ctx, `SELECT CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee)::text END, a.privilege_type, a.is_grantable
		FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname = $1 ORDER BY 1, 2`, db)
	if err == nil {
		var it aclItem
		_, err = pgx.ForEachRow(rows, []any{&it.grantee, &it.privilege, &it.grantable}, func() error {
			p.acl = append(p.acl, it)
			return nil
		})
	}
	if err != nil {
		return p, fmt.Errorf("read the privileges of database %q: %w", db, err)
	}
	rows, err = q.Query(ctx, `SELECT CASE WHEN s.setrole = 0 THEN '' ELSE pg_get_userbyid(s.setrole)::text END, s.setconfig
		FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1 ORDER BY 1`, db)
	if err == nil {
		var rs roleSetting
		_, err = pgx.ForEachRow(rows, []any{&rs.role, &rs.config}, func() error {
			p.settings = append(p.settings, roleSetting{role: rs.role, config: slices.Clone(rs.config)})
			return nil
		})
	}
	if err != nil {
		return p, fmt.Errorf("read the settings of database %q: %w", db, err)
	}
	return p, nil
}

// applyDatabaseProps gives database db, through conn to its server's
// maintenance database, the properties want: those of the source
// database. Without owners (Options.NoOwner) it applies only the
// settings for every role. Every statement is built on the server.
func applyDatabaseProps(ctx context.Context, conn *pgx.Conn, db string, want dbProps, noOwner bool) error {
	have, err := readDatabaseProps(ctx, conn, db)
	if err != nil {
		return err
	}
	var stmts []string
	add := func(format string, args ...string) error {
		q, err := formatStatement(ctx, conn, format, args...)
		stmts = append(stmts, q)
		return err
	}
	if !noOwner && have.owner != want.owner {
		if err := add("ALTER DATABASE %I OWNER TO %I", db, want.owner); err != nil {
			return err
		}
	}
	// Settings: the target's are reset, then the source's applied.
	for _, rs := range have.settings {
		var err error
		switch {
		case rs.role == "":
			err = add("ALTER DATABASE %I RESET ALL", db)
		case !noOwner:
			err = add("ALTER ROLE %I IN DATABASE %I RESET ALL", rs.role, db)
		}
		if err != nil {
			return err
		}
	}
	for _, rs := range want.settings {
		if rs.role != "" && noOwner {
			continue
		}
		for _, kv := range rs.config {
			name, value, _ := strings.Cut(kv, "=")
			values := []string{value}
			if gucListQuote[strings.ToLower(name)] {
				values = splitGUCList(value)
			}
			head := "ALTER DATABASE %I SET %I TO "
			args := []string{db, name}
			if rs.role != "" {
				head, args = "ALTER ROLE %I IN DATABASE %I SET %I TO ", []string{rs.role, db, name}
			}
			lits := make([]string, len(values))
			for i := range values {
				lits[i] = "%L"
			}
			if err := add(head+strings.Join(lits, ", "), append(args, values...)...); err != nil {
				return err
			}
		}
	}
	// Privileges: the target's are revoked, then the source's granted.
	if !noOwner && !slices.Equal(have.acl, want.acl) {
		for _, it := range have.acl {
			if err := addGrant(add, "REVOKE ALL ON DATABASE %I FROM ", db, it.grantee, ""); err != nil {
				return err
			}
		}
		for _, it := range want.acl {
			opt := ""
			if it.grantable {
				opt = " WITH GRANT OPTION"
			}
			if err := addGrant(add, "GRANT "+it.privilege+" ON DATABASE %I TO ", db, it.grantee, opt); err != nil {
				return err
			}
		}
	}
	for _, q := range slices.Compact(stmts) {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("give target database %q the source's properties: %s: %w", db, q, err)
		}
	}
	return nil
}

// addGrant adds a GRANT or REVOKE to grantee ("" is PUBLIC). head's
// privilege names come from aclexplode, never from input.
func addGrant(add func(string, ...string) error, head, db, grantee, tail string) error {
	if grantee == "" {
		return add(head+"PUBLIC"+tail, db)
	}
	return add(head+"%I"+tail, db, grantee)
}

// gucListQuote are the parameters whose value is a list of quoted
// elements (GUC_LIST_QUOTE, as pg_dump's variable_is_guc_list_quote).
var gucListQuote = map[string]bool{"local_preload_libraries": true, "search_path": true, "session_preload_libraries": true,
	"shared_preload_libraries": true, "temp_tablespaces": true, "unix_socket_directories": true}

// splitGUCList splits a list parameter's stored value as PostgreSQL's
// SplitGUCList does: elements separated by commas, each either
// double-quoted ("" for a quote) or bare, whitespace around them dropped.
func splitGUCList(s string) []string {
	var out []string
	i := 0
	skipSpace := func() {
		for i < len(s) && strings.ContainsRune(" \t\n\r\f\v", rune(s[i])) {
			i++
		}
	}
	for {
		skipSpace()
		var b strings.Builder
		quoted := i < len(s) && s[i] == '"'
		if quoted {
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
			}
		} else {
			for ; i < len(s) && s[i] != ','; i++ {
				b.WriteByte(s[i])
			}
		}
		if quoted {
			out = append(out, b.String())
		} else {
			out = append(out, strings.TrimRight(b.String(), " \t\n\r\f\v"))
		}
		skipSpace()
		if i >= len(s) || s[i] != ',' {
			return out
		}
		i++
	}
}
