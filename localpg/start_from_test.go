package localpg_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// A standby made by pg_basebackup -R starts as a hot standby that streams
// from its primary: localpg's settings did not clobber standby.signal or
// primary_conninfo, and the files belong to the server's user.
func TestStartFromBaseBackup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary := localpgtest.Start(t, &localpg.Config{Name: "primary", Password: "pw'1"})
	execSQL(t, primary, "CREATE TABLE seen (v int); INSERT INTO seen VALUES (1)")

	standby, err := localpg.StartFrom(ctx, &localpg.Config{Name: "standby", Password: "pw'1"},
		func(ctx context.Context, inst *localpg.Instance) error {
			cmd := inst.Command(ctx, "pg_basebackup", "-D", inst.DataDir(), "-R", "-X", "stream",
				"-c", "fast", "-w", "-d", primary.ConnStringAs(localpg.SuperuserDefault, "", "postgres"))
			cmd.Env = append(os.Environ(), "PGPASSWORD=pw'1")
			if out, err := cmd.CombinedOutput(); err != nil {
				return errors.New(strings.TrimSpace(string(out)))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	if standby.Port() == primary.Port() {
		t.Fatalf("standby listens on the primary's port %d", standby.Port())
	}
	if count(t, standby, "SELECT pg_is_in_recovery()::int") != 1 {
		t.Fatal("the standby is not in recovery: standby.signal was lost")
	}
	execSQL(t, primary, "INSERT INTO seen VALUES (2)")
	for deadline := time.Now().Add(30 * time.Second); count(t, standby, "SELECT count(*) FROM seen") != 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a row written on the primary never reached the standby")
		}
	}
	var port string
	conn, err := standby.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT current_setting('port')").Scan(&port); err != nil || port != itoa(standby.Port()) {
		t.Errorf("port setting %q (%v), want localpg's %d", port, err, standby.Port())
	}
}

func TestStartFromFailingFillLeavesNothing(t *testing.T) {
	t.Parallel()
	base, err := os.MkdirTemp("", "localpg-startfrom-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := &localpg.Config{BaseDir: base}
	boom := errors.New("boom")
	_, err = localpg.StartFrom(ctx, cfg, func(ctx context.Context, inst *localpg.Instance) error {
		if err := os.MkdirAll(inst.DataDir(), 0o700); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("failing fill: %v, want its error", err)
	}
	_, err = localpg.StartFrom(ctx, cfg, func(context.Context, *localpg.Instance) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "PG_VERSION") {
		t.Errorf("empty fill: %v, want an error saying no data directory was made", err)
	}
	if _, err := localpg.StartFrom(ctx, cfg, nil); err == nil {
		t.Error("nil fill accepted")
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 0 {
		t.Errorf("failed starts left %d entries in %s", len(entries), base)
	}
}
