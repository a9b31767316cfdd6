package pgbouncer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// dbState is a row of SHOW DATABASES: where the entry points, and
// whether it is paused.
type dbState struct {
	endpoint string // host:port/database, as endpointOf
	paused   bool
}

// connectConsole connects to the admin console without letting a parse
// error quote the connection string (it may hold a password).
func connectConsole(ctx context.Context, admin string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		return nil, errors.New("Config.Admin is not a valid connection string")
	}
	// The admin console speaks only the simple query protocol.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the admin console: %w", err)
	}
	return conn, nil
}

// showDatabases reads SHOW DATABASES, whose columns differ between
// PgBouncer versions, by column name.
func showDatabases(ctx context.Context, conn *pgx.Conn) (map[string]dbState, error) {
	out := map[string]dbState{}
	err := show(ctx, conn, "SHOW DATABASES", []string{"name", "host", "port", "database", "paused"}, func(v []string) {
		out[v[0]] = dbState{endpoint: v[1] + ":" + v[2] + "/" + v[3], paused: v[4] == "1"}
	})
	return out, err
}

// show runs an admin console SHOW command and hands each row's values of
// cols to fn, as text.
func show(ctx context.Context, conn *pgx.Conn, cmd string, cols []string, fn func([]string)) error {
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
			return fmt.Errorf("%s has no %s column: is Config.Admin PgBouncer's admin console?", cmd, c)
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

// command runs PAUSE or RESUME of db; a refusal whose message contains
// tolerate (the database is already in the wanted state) is no error.
// Admin console commands take no parameters: the name is quoted as an
// identifier, which PgBouncer accepts.
func command(ctx context.Context, conn *pgx.Conn, verb, db, tolerate string) error {
	_, err := conn.Exec(ctx, verb+" "+pgx.Identifier{db}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.Contains(pgErr.Message, tolerate) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, strconv.Quote(db), err)
	}
	return nil
}
