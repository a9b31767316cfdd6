// Package pgretry tells the PostgreSQL errors that may go away when an
// operation is tried again from those that will not, and retries with
// exponential backoff. The replica packages use it.
package pgretry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports whether err may go away when tried again: a lost or
// refused connection, a server shutting down or out of resources, a
// serialization failure or deadlock, an object in use (an active slot),
// or a network error. A context that ended is not.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "57", "53", "40": // connection, operator intervention, resources, rollback
			return true
		}
		return pgErr.Code == "55006" // object in use: a slot still active
	}
	return true // network errors
}

// Retry runs op until it succeeds, fails with an error transient does not
// accept, or maxElapsed or ctx ends, with exponential backoff from
// initial to one second between tries.
func Retry(ctx context.Context, maxElapsed, initial time.Duration, transient func(error) bool, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = initial
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
