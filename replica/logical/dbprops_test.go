package logical_test

import (
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// dbPropsQuery describes a database's owner, locale, privileges and
// settings by name, comparable between servers.
const dbPropsQuery = `SELECT concat_ws(E'\n',
	'owner ' || pg_get_userbyid(d.datdba),
	'locale ' || concat_ws(' ', pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, d.datlocprovider, coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale')),
	(SELECT string_agg(concat_ws(' ', 'acl', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
		a.privilege_type, a.is_grantable), E'\n' ORDER BY 1)
	 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a),
	(SELECT string_agg(concat_ws(' ', 'set', coalesce(r.rolname, '*'), s.setconfig::text), E'\n' ORDER BY 1)
	 FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = d.oid))
FROM pg_database d WHERE d.datname = $1`

// The target database gets the source database's owner, locale (ICU),
// privileges and settings (for every role, and per role, list values
// included). A role the database needs that the target lacks is named by
// preflight, and so is an existing target database of another locale.
func TestDatabaseProperties(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	roles := []string{`CREATE ROLE "Tenant Owner"`, `CREATE ROLE app LOGIN`}
	execSQL(t, src, "postgres", roles...)
	execSQL(t, src, "postgres",
		`CREATE DATABASE props TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LC_COLLATE 'C' LC_CTYPE 'C'`,
		`ALTER DATABASE props OWNER TO "Tenant Owner"`,
		`ALTER DATABASE props SET work_mem = '12MB'`,
		`ALTER DATABASE props SET search_path = "$user", public, "Weird, ""Schema"""`,
		`ALTER ROLE app IN DATABASE props SET statement_timeout = '5s'`,
		`REVOKE ALL ON DATABASE props FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE props TO app`,
		`GRANT TEMPORARY ON DATABASE props TO app WITH GRANT OPTION`)
	execSQL(t, src, "props", `CREATE TABLE t (id int PRIMARY KEY, v text)`, `INSERT INTO t VALUES (1, 'a')`)
	sp := spec("properties", src, "props", dst, "props")
	ctx := testCtx(t, 2*time.Minute)

	report, err := provider.Preflight(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if e := report.Err(); e == nil || !strings.Contains(e.Error(), `"Tenant Owner"`) || !strings.Contains(e.Error(), "app") {
		t.Errorf("preflight with roles missing on the target: %v, want them named", e)
	}
	execSQL(t, dst, "postgres", roles...)
	localpgtest.CreateDatabase(t, dst, "libc")
	report, err = provider.Preflight(ctx, spec("properties-libc", src, "props", dst, "libc"))
	if err != nil {
		t.Fatal(err)
	}
	if e := report.Err(); e == nil || !strings.Contains(e.Error(), "locale provider c") || !strings.Contains(e.Error(), "locale provider i de-DE") {
		t.Errorf("preflight with an existing libc target for an ICU source: %v, want both locales named", e)
	}
	st := startStreaming(t, sp)
	want := queryValue[string](t, src, "postgres", dbPropsQuery, "props")
	if got := queryValue[string](t, dst, "postgres", dbPropsQuery, "props"); got != want {
		t.Errorf("target database properties:\n%s\nwant the source's:\n%s", got, want)
	}
	t.Log(want)
	if err := st.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if v := queryValue[string](t, dst, "props", `SHOW search_path`); v != `"$user", public, "Weird, ""Schema"""` {
		t.Errorf("search_path in the target database: %s", v)
	}
}
