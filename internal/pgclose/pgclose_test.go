package pgclose_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/internal/pgclose"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConn: a nil connection is nothing to close; an open one is closed.
func TestConn(t *testing.T) {
	pgclose.Conn(nil, time.Second)
	inst := localpgtest.Start(t, nil)
	conn, err := inst.Connect(context.Background(), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	pgclose.Conn(conn, time.Second)
	if !conn.IsClosed() {
		t.Error("the connection is still open")
	}
}
