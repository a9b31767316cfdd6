package pgretry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTransientAndRetry(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true},  // admin shutdown
		{&pgconn.PgError{Code: "55006"}, true},  // slot in use
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table
		{context.Canceled, false},
		{errors.New("connection reset by peer"), true},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	tries := 0
	err := Retry(context.Background(), time.Minute, time.Millisecond, Transient, func() error {
		if tries++; tries < 3 {
			return &pgconn.PgError{Code: "08006"}
		}
		return nil
	})
	if err != nil || tries != 3 {
		t.Errorf("Retry: %v after %d tries, want success after 3", err, tries)
	}
	tries = 0
	permanent := &pgconn.PgError{Code: "42P01"}
	if err := Retry(context.Background(), time.Minute, time.Millisecond, Transient, func() error { tries++; return permanent }); !errors.Is(err, permanent) || tries != 1 {
		t.Errorf("Retry of a permanent error: %v after %d tries", err, tries)
	}
}
