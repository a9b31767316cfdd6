// Package pgbadmin talks to PgBouncer's admin console (the database
// "pgbouncer"), for cutover's PgBouncerFence and flags/pgbouncer's
// Follower: connecting without ever quoting the connection string,
// reading SHOW commands by column name (their columns differ between
// PgBouncer versions), and telling a refusal that means "already so"
// from a failure.
package pgbadmin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrConnString: the admin connection string does not parse. The error
// does not quote it: it may hold a password.
var ErrConnString = errors.New("not a valid connection string")

// Connect connects to an admin console. It speaks only the simple query
// protocol, which the connection is set to.
func Connect(ctx context.Context, admin string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		return nil, ErrConnString
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the admin console: %w", err)
	}
	return conn, nil
}

// Show runs a SHOW command and hands fn each row's values of cols, as
// text (NULL as ""); the slice is reused between rows. A missing column
// is an error: the session is not to an admin console.
func Show(ctx context.Context, conn *pgx.Conn, cmd string, cols []string, fn func(vals []string)) error {
	rows, err := conn.Query(ctx, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	defer rows.Close()
	idx := make([]int, len(cols))
	for i, c := range cols {
		idx[i] = -1
		for j, fd := range rows.FieldDescriptions() {
			if fd.Name == c {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return fmt.Errorf("%s has no %s column: is this PgBouncer's admin console?", cmd, c)
		}
	}
	vals := make([]string, len(cols))
	for rows.Next() {
		raw, err := rows.Values()
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		for i, j := range idx {
			switch v := raw[j].(type) {
			case nil:
				vals[i] = ""
			case string:
				vals[i] = v
			default:
				vals[i] = fmt.Sprint(v)
			}
		}
		fn(vals)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}

// Command runs verb (PAUSE, RESUME) on database db. A refusal whose
// message contains tolerate ("already" for PAUSE, "not paused" for
// RESUME: the database is in the wanted state already) is no error;
// PgBouncer's refusals carry no SQLSTATE of their own (all are 08P01).
// Admin console commands take no parameters: the name is quoted as an
// identifier, which PgBouncer accepts.
func Command(ctx context.Context, conn *pgx.Conn, verb, db, tolerate string) error {
	_, err := conn.Exec(ctx, verb+" "+pgx.Identifier{db}.Sanitize())
	var pgErr *pgconn.PgError
	if err != nil && errors.As(err, &pgErr) && strings.Contains(pgErr.Message, tolerate) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", verb, db, err)
	}
	return nil
}

// Refusal reports whether err is the console refusing a command, which
// leaves the session usable, rather than a failure of the session.
func Refusal(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}
