// Package pgclose closes pgx connections on cleanup paths: without a
// caller's context (which may be cancelled already), and without waiting
// longer than a bound for a server that does not answer.
package pgclose

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Conn closes conn, waiting at most timeout for the server to take the
// goodbye; a nil conn is nothing to close.
func Conn(conn *pgx.Conn, timeout time.Duration) {
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = conn.Close(ctx)
}
