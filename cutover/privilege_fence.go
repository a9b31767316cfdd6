package cutover

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
)

// The fence of a source copy that receives a reverse stream. The
// database fence refuses every connection (ALLOW_CONNECTIONS false), the
// reverse's apply worker's too; so once the routes are on the target the
// source copy is fenced by privileges instead: CONNECT is revoked from
// every role that has it (PUBLIC included) but the admin role, and only
// then are connections allowed again. The admin role is a superuser (a
// subscription needs one), and so is the apply worker's, which
// privileges do not bind; nor do they bind an application that connects
// as a superuser. So the database's sessions are also read-only by
// default (default_transaction_read_only on for the database, off for
// the admin role in it, whose apply worker writes): a superuser's
// application that reaches the source copy is refused its writes (25006)
// unless it turns that off on purpose. An application connected as the
// admin role itself is bound by nothing (see revert.go). Which roles had
// CONNECT is journaled before the window (StepReversePrepare), so a
// Revert gives exactly those their grant back, and resets both settings.

// connectGrantees lists who may connect to db: "PUBLIC" and role names,
// from its ACL (the default ACL when it has none).
func connectGrantees(ctx context.Context, conn *pgx.Conn, db string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE r.rolname::text END
		FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
		LEFT JOIN pg_roles r ON r.oid = a.grantee
		WHERE d.datname = $1 AND a.privilege_type = 'CONNECT' AND (a.grantee = 0 OR r.rolname IS NOT NULL)
		ORDER BY 1`, db)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read who may connect to database %q: %w", db, err)
	}
	return names, nil
}

// granteeList is grantees as GRANT and REVOKE take them.
func granteeList(grantees []string) string {
	out := make([]string, len(grantees))
	for i, g := range grantees {
		if g == "PUBLIC" {
			out[i] = g
		} else {
			out[i] = pgx.Identifier{g}.Sanitize()
		}
	}
	return strings.Join(out, ", ")
}

// fenceByPrivileges fences db on inst by privileges (see above): it
// revokes CONNECT from whoever has it now but the admin role (journaled,
// who had it before the move, is what openByPrivileges gives back);
// checks that no role that can
// log in, other than superusers and the admin, may still connect (a grant
// by another grantor survives a REVOKE); then allows connections and ends
// the sessions of every other role. A failure before the last two leaves
// the database refusing connections, as the database fence left it.
func fenceByPrivileges(ctx context.Context, inst fleet.Instance, db string) error {
	conn, err := connectAdmin(ctx, inst, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	now, err := connectGrantees(ctx, conn, db)
	if err != nil {
		return err
	}
	var admin string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&admin); err != nil {
		return err
	}
	revoke := slices.DeleteFunc(now, func(g string) bool { return g == admin })
	ident := pgx.Identifier{db}.Sanitize()
	if len(revoke) > 0 {
		if _, err := conn.Exec(ctx, "REVOKE CONNECT ON DATABASE "+ident+" FROM "+granteeList(revoke)+" CASCADE"); err != nil {
			return fmt.Errorf("revoke CONNECT on source database %q: %w", db, err)
		}
	}
	rows, err := conn.Query(ctx, `SELECT rolname::text FROM pg_roles
		WHERE rolcanlogin AND NOT rolsuper AND rolname <> current_user AND has_database_privilege(oid, $1, 'CONNECT')
		ORDER BY 1`, db)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("check who may still connect to source database %q: %w", db, err)
	}
	if len(left) > 0 {
		return fmt.Errorf("roles %s may still connect to source database %q after CONNECT was revoked (granted by another grantor?): revoke it as that grantor, then Resume",
			joinFirst(left, 5), db)
	}
	// One statement, one transaction: both settings or neither.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" SET default_transaction_read_only = on; "+
		"ALTER ROLE CURRENT_USER IN DATABASE "+ident+" SET default_transaction_read_only = off"); err != nil {
		return fmt.Errorf("make the sessions of source database %q read-only by default: %w", db, err)
	}
	if _, err := conn.Exec(ctx, allowConnections([]string{db}, true)); err != nil {
		return fmt.Errorf("allow the admin's connections to source database %q: %w", db, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
		WHERE a.datname = $1 AND NOT r.rolsuper AND r.rolname <> current_user AND a.pid <> pg_backend_pid()`, db); err != nil {
		return fmt.Errorf("end the sessions in source database %q: %w", db, err)
	}
	return nil
}

// openByPrivileges gives CONNECT on db back to grantees (see
// fenceByPrivileges) that still exist, and resets the read-only default,
// through conn: a read, then one statement (one transaction, one commit:
// it runs in a revert's window).
func openByPrivileges(ctx context.Context, conn *pgx.Conn, db string, grantees []string) error {
	rows, err := conn.Query(ctx, `SELECT g FROM unnest($1::text[]) g
		WHERE g = 'PUBLIC' OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = g)`, grantees)
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("give CONNECT on database %q back: %w", db, err)
	}
	ident := pgx.Identifier{db}.Sanitize()
	stmt := "ALTER DATABASE " + ident + " RESET default_transaction_read_only; " +
		"ALTER ROLE CURRENT_USER IN DATABASE " + ident + " RESET default_transaction_read_only"
	if len(existing) > 0 {
		stmt += "; GRANT CONNECT ON DATABASE " + ident + " TO " + granteeList(existing)
	}
	if _, err = conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("give CONNECT on database %q back: %w", db, err)
	}
	return nil
}
