package localpg_test

import (
	"context"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

func TestQuickTry(t *testing.T) {
	t0 := time.Now()
	inst := localpgtest.Start(t, nil)
	t.Log("first", time.Since(t0))
	t0 = time.Now()
	inst2 := localpgtest.Start(t, nil)
	t.Log("second", time.Since(t0))
	conn, err := inst2.Connect(context.Background(), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	var s string
	conn.QueryRow(context.Background(), "show wal_level").Scan(&s)
	t.Log(s, inst)
	conn.Close(context.Background())
}
