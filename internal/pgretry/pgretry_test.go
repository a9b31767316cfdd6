package pgretry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/internal/pgretry"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTransient(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"no rows", pgx.ErrNoRows, false},
		{"no rows, wrapped", fmt.Errorf("read the route: %w", pgx.ErrNoRows), false},
		{"unknown", errors.New("something else"), false},
		{"canceled", context.Canceled, false},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"query canceled", &pgconn.PgError{Code: "57014"}, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"connection exception", fmt.Errorf("x: %w", &pgconn.PgError{Code: "08000"}), true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, true},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, true},
		{"slot in use", &pgconn.PgError{Code: "55006"}, true},
		{"EOF", io.EOF, true},
		{"unexpected EOF, wrapped", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), true},
		{"net error", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, true},
		{"no such host", &net.DNSError{Err: "no such host", Name: "db.invalid", IsNotFound: true}, false},
		{"resolver timeout", &net.DNSError{Err: "i/o timeout", Name: "db.example", IsTimeout: true}, true},
	} {
		if got := pgretry.Transient(c.err); got != c.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// TestTransientFromServer: the errors pgx really returns when the server
// ends a session, refuses a connection or rejects a statement.
func TestTransientFromServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	victim, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close(ctx)
	admin, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)

	var n int
	err = victim.QueryRow(ctx, "SELECT 1 WHERE false").Scan(&n)
	if !errors.Is(err, pgx.ErrNoRows) || pgretry.Transient(err) {
		t.Errorf("no rows: %v, Transient %v; want not transient", err, pgretry.Transient(err))
	}
	_, err = victim.Exec(ctx, "SELEC 1")
	if err == nil || pgretry.Transient(err) {
		t.Errorf("syntax error: %v, Transient %v; want not transient", err, pgretry.Transient(err))
	}

	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", int64(victim.PgConn().PID())); err != nil {
		t.Fatal(err)
	}
	_, err = victim.Exec(ctx, "SELECT 1")
	if err == nil || !pgretry.Transient(err) {
		t.Errorf("terminated session: %v, Transient %v; want transient", err, pgretry.Transient(err))
	}

	// Nothing listens on a port that was just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port))
	if err == nil {
		c.Close(ctx)
		t.Fatal("connected to a closed port")
	}
	if !pgretry.Transient(err) {
		t.Errorf("connection refused: %v, want transient", err)
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	tries := 0
	err := pgretry.Retry(context.Background(), time.Minute, time.Millisecond, pgretry.Transient, func() error {
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
	if err := pgretry.Retry(context.Background(), time.Minute, time.Millisecond, pgretry.Transient, func() error { tries++; return permanent }); !errors.Is(err, permanent) || tries != 1 {
		t.Errorf("Retry of a permanent error: %v after %d tries", err, tries)
	}
	tries = 0
	if err := pgretry.Retry(context.Background(), time.Minute, time.Millisecond, pgretry.Transient, func() error { tries++; return pgx.ErrNoRows }); !errors.Is(err, pgx.ErrNoRows) || tries != 1 {
		t.Errorf("Retry of ErrNoRows: %v after %d tries, want 1 try", err, tries)
	}
}

// TestRetryEndedByContextSaysTheLastTry: retries that end because ctx
// ended say so (errors.Is the context's error) and what the last try
// met, for every user of Retry.
func TestRetryEndedByContextSaysTheLastTry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	lost := &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	tries := 0
	err := pgretry.Retry(ctx, time.Minute, time.Millisecond, pgretry.Transient, func() error {
		if tries++; tries == 3 {
			cancel()
		}
		return lost
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, lost) || !strings.Contains(err.Error(), "last try: "+lost.Error()) {
		t.Errorf("Retry ended by its context: %v, want context.Canceled and the last try's error", err)
	}
}
