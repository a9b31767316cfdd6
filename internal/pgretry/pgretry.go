// Package pgretry tells the PostgreSQL errors that may go away when an
// operation is tried again from those that will not, and retries with
// exponential backoff. The replica packages and the flags Resolver use it.
package pgretry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports whether err may go away when the operation is tried
// again, on a new connection if the old one is gone: a lost, refused or
// timed-out connection (pgconn.SafeToRetry, pgconn.Timeout, a net.Error,
// an EOF), a server shutting down, starting up or out of connections, a
// serialization failure or deadlock, or an object in use (an active slot).
// A context that ended is not, and neither is anything it does not
// recognize (pgx.ErrNoRows, a syntax error, an error that lost its chain):
// retrying what is not known to be transient only delays the real error.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// A server error decides by its SQLSTATE, even inside a connect error
	// (57P03 while starting up, 53300 when full).
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientState(pgErr.Code)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		// "no such host" stays so; a resolver that timed out may not.
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	}
	var netErr net.Error
	switch {
	case pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	case errors.As(err, &netErr):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}

// transientState reports whether a server error with SQLSTATE code may go
// away when tried again.
func transientState(code string) bool {
	switch code {
	case "57P01", // admin_shutdown: the backend was terminated
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: starting up or shutting down
		"53300", // too_many_connections
		"53400", // configuration_limit_exceeded (max_wal_senders...)
		"40001", // serialization_failure
		"40P01", // deadlock_detected
		"55006", // object_in_use: a slot still active
		"55P03": // lock_not_available: lock_timeout
		return true
	}
	// Class 08: connection exceptions (08000, 08003, 08006, 08001...).
	return len(code) == 5 && code[:2] == "08"
}

// Retry runs op until it succeeds, fails with an error transient does not
// accept, or maxElapsed or ctx ends, with exponential backoff from
// initial to one second between tries. An error that ends the retries
// because ctx ended says what the last try met too: the context's error
// alone would hide why the operation never succeeded.
func Retry(ctx context.Context, maxElapsed, initial time.Duration, transient func(error) bool, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = initial
	b.MaxInterval = time.Second
	b.MaxElapsedTime = maxElapsed
	var last error
	err := backoff.Retry(func() error {
		last = op()
		if last != nil && !transient(last) {
			return backoff.Permanent(last)
		}
		return last
	}, backoff.WithContext(b, ctx))
	if err != nil && last != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) && !errors.Is(last, ctx.Err()) {
		return fmt.Errorf("%w (last try: %w)", err, last)
	}
	return err
}

// Poll paces a wait that looks again and again: from initial, doubling,
// to at most max, for as long as the wait goes on.
func Poll(initial, max time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = initial, max, 0
	b.RandomizationFactor = 0
	b.Reset()
	return b
}
