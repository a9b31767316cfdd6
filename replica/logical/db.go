package logical

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daisychain-db/daisychain/internal/pgclose"
	"github.com/daisychain-db/daisychain/internal/pgretry"
)

// querier is what the helpers need of a connection or pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func collect[T any](rows pgx.Rows) ([]T, error) { return pgx.CollectRows(rows, pgx.RowTo[T]) }

// sessionParams are the settings of every connection the stream opens,
// sent at startup so they hold from the first statement on. They fix the
// text form of values, which Verify's checksums hash (ROW(t.*)::text), so
// that source and target format alike whatever their defaults are.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
}

// setSessionParams adds sessionParams to a connection's startup
// parameters; they override the connection string's options.
func setSessionParams(params map[string]string) {
	for k, v := range sessionParams {
		params[k] = v
	}
}

// connect opens one connection. Errors name the endpoint and database,
// never the password.
func connect(ctx context.Context, ci conninfo, what string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(ci.String())
	if err != nil {
		return nil, fmt.Errorf("%s connection string is invalid", what)
	}
	setSessionParams(cfg.RuntimeParams)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s database %q at %s: %w", what, ci["dbname"], ci.Endpoint(), err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) { pgclose.Conn(conn, 5*time.Second) }

// sqlState returns the SQLSTATE of a server error, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// transient reports whether err may go away by retrying: what
// pgretry.Transient accepts (never this package's sentinels, nor a
// program that failed, pg_restore's *exec.ExitError: it printed why, and
// running it again mostly fails again; see stream.retryable), and
// errTryAgain.
func transient(err error) bool {
	return errors.Is(err, errTryAgain) || pgretry.Transient(err)
}

// errTryAgain marks an error of this package that a retry may cure.
var errTryAgain = errors.New("try again")

// retry runs op until it succeeds, fails permanently, or maxElapsed or
// ctx ends, with exponential backoff between tries (see pgretry.Retry).
func retry(ctx context.Context, maxElapsed time.Duration, op func() error) error {
	return pgretry.Retry(ctx, maxElapsed, 50*time.Millisecond, transient, op)
}

// connectHeld opens a connection to the source tenant database in WAL
// sender mode (replication=database), which runs SQL with the simple
// protocol and is not a client backend: a fence that ends client sessions
// and refuses new connections leaves it alone.
func (e *env) connectHeld(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(e.srcDB.String())
	if err != nil {
		return nil, fmt.Errorf("source connection string is invalid")
	}
	setSessionParams(cfg.RuntimeParams)
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = heldApplicationName(e.name)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to source database %q at %s in WAL sender mode: %w", e.srcDB["dbname"], e.srcDB.Endpoint(), err)
	}
	return conn, nil
}

// formatStatement builds a statement on the server with format(): %I
// quotes an identifier, %L a literal, as the server's settings require
// (standard_conforming_strings included). For utility statements, which
// take no parameters. Each arg is passed as text.
func formatStatement(ctx context.Context, q querier, format string, args ...string) (string, error) {
	params := make([]string, len(args))
	values := make([]any, 0, len(args)+1)
	values = append(values, format)
	for i, a := range args {
		params[i] = fmt.Sprintf(", $%d::text", i+2)
		values = append(values, a)
	}
	var stmt string
	err := q.QueryRow(ctx, "SELECT format($1"+strings.Join(params, "")+")", values...).Scan(&stmt)
	return stmt, err
}
