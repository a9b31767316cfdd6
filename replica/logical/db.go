package logical

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is what the helpers need of a connection or pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func collect[T any](rows pgx.Rows) ([]T, error) { return pgx.CollectRows(rows, pgx.RowTo[T]) }

// connect opens one connection. Errors name the endpoint and database,
// never the password.
func connect(ctx context.Context, ci conninfo, what string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(ci.String())
	if err != nil {
		return nil, fmt.Errorf("%s connection string is invalid", what)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s database %q at %s: %w", what, ci["dbname"], ci.Endpoint(), err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	if conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	}
}

// sqlState returns the SQLSTATE of a server error, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// transient reports whether err may go away by retrying: a connection
// that failed or broke (a restarting server), or an object in use.
func transient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "57", "53", "40": // connection, operator intervention (shutdown), resources, rollback
			return true
		}
		return pgErr.Code == "55006" // object in use (an active slot)
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// retry runs op until it succeeds, fails permanently, or ctx ends, with
// exponential backoff between tries.
func retry(ctx context.Context, maxElapsed time.Duration, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = time.Second
	b.MaxElapsedTime = maxElapsed
	return backoff.Retry(func() error {
		err := op()
		if err != nil && !transient(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx))
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
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "daisychain " + e.name
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to source database %q at %s in WAL sender mode: %w", e.srcDB["dbname"], e.srcDB.Endpoint(), err)
	}
	return conn, nil
}
