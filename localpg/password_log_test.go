package localpg_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// TestPasswordNotLogged: a server that logs every statement, with its
// duration and parameters, does not log the password localpg sets.
func TestPasswordNotLogged(t *testing.T) {
	t.Parallel()
	const pw = "n0t-in-the-log"
	inst := localpgtest.Start(t, &localpg.Config{Name: "pwlog", Password: pw, Settings: map[string]string{
		"log_statement":              "all",
		"log_min_duration_statement": "0",
		"log_min_messages":           "info",
	}})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, inst.ConnString("postgres"))
	if err != nil {
		t.Fatalf("connect with the password: %v", err)
	}
	// Statement logging is on for everyone else.
	if _, err := conn.Exec(ctx, "SELECT 'logged-marker'"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	log := inst.Log()
	if !strings.Contains(log, "logged-marker") {
		t.Fatalf("the server does not log statements; log:\n%s", log)
	}
	if strings.Contains(log, pw) {
		t.Errorf("the server log shows the password:\n%s", log)
	}
}
