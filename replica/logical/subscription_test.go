package logical_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
)

// The subscription's connection string holds the source's password: it
// reaches the target's log neither when the target logs every statement
// nor when creating the subscription fails. Quoting does not depend on
// the target's standard_conforming_strings (the password, and the ID in
// the stream's marker, have quotes and backslashes).
func TestSubscriptionPasswordStaysOutOfTargetLog(t *testing.T) {
	t.Parallel()
	const password, wrong = `pa\ss'wörd "x"`, `wrong\'secret`
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Password: password})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst", Settings: map[string]string{
		"log_statement": "all", "log_min_duration_statement": "0", "standard_conforming_strings": "off"}})
	createTenant(t, src, "t", 100)
	ctx := testCtx(t, 2*time.Minute)

	// A password the target's view of the source refuses: preflight's
	// probe from the target finds it; the error names the failure, not
	// the password, and nothing is left.
	bad := spec(`refused \ "one"`, src, "t", dst, "refused")
	bad.SourceForTarget = src.ConnStringAs("postgres", wrong, "t")
	if st, err := provider.Start(ctx, bad); err == nil {
		_ = st.Abort(ctx)
		t.Fatal("Start with a wrong password for the subscription succeeded")
	} else if !isErr(err, replica.ErrPreflight) || !strings.Contains(err.Error(), "target reaches source") ||
		!strings.Contains(err.Error(), "password authentication failed") || strings.Contains(err.Error(), wrong) {
		t.Errorf("Start with a wrong password: %v", err)
	}
	if databaseExists(t, dst, "refused") {
		t.Error("the failed Start left its target database")
	}

	st := startStreaming(t, spec(`tenant \ "q"`, src, "t", dst, "t"))
	execSQL(t, src, "t", `INSERT INTO orders (kunde, amount) VALUES (1, 1)`)
	catchUp(t, st, time.Minute)
	if err := st.Verify(ctx, replica.VerifyCounts); err != nil {
		t.Fatal(err)
	}
	log := dst.Log()
	if !strings.Contains(log, "statement: ") {
		t.Fatal("the target logs no statements: the test proves nothing")
	}
	for _, secret := range []string{password, wrong, `pa\\ss`, `wrong\\`, "wörd", "secret"} {
		if strings.Contains(log, secret) {
			t.Errorf("the target's log shows %q", secret)
		}
	}
}

// The subscription's connection string holds the source's password, and
// pg_stat_activity shows every session's statement to any pg_monitor
// member on the target. A sampler reads pg_stat_activity on the target
// throughout a stream's start; a lock on pg_subscription, held until the
// sampler has seen the subscription's statement waiting for it, makes sure
// it sees that statement.
func TestSubscriptionPasswordNotInActivity(t *testing.T) {
	t.Parallel()
	const password = `activity-Secret-4711`
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Password: password})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	ctx := testCtx(t, 2*time.Minute)

	locker, err := dst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	if _, err := locker.Exec(ctx, `BEGIN; LOCK TABLE pg_subscription IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	sampler, err := dst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close(ctx)
	type sampled struct {
		samples, waiting int
		leaks            []string
		err              error
	}
	done := make(chan sampled, 1)
	stop := make(chan struct{})
	go func() {
		var s sampled
		released := false
		defer func() { done <- s }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rows, err := sampler.Query(ctx, `SELECT coalesce(query, ''), coalesce(wait_event_type, '') FROM pg_stat_activity
				WHERE pid <> pg_backend_pid()`)
			if err != nil {
				s.err = err
				return
			}
			var query, wait string
			_, err = pgx.ForEachRow(rows, []any{&query, &wait}, func() error {
				if strings.Contains(query, password) {
					s.leaks = append(s.leaks, query)
				}
				if wait == "Lock" {
					s.waiting++
				}
				return nil
			})
			if err != nil {
				s.err = err
				return
			}
			s.samples++
			if s.waiting > 0 && !released {
				released = true
				if _, err := locker.Exec(ctx, `COMMIT`); err != nil {
					s.err = err
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	st, err := provider.Start(ctx, spec("activity", src, "t", dst, "t"))
	close(stop)
	s := <-done
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Abort(testCtx(t, time.Minute)) })
	if s.err != nil {
		t.Fatal(s.err)
	}
	if s.waiting == 0 {
		t.Fatalf("the sampler never saw the subscription being created (%d samples): the test proves nothing", s.samples)
	}
	if len(s.leaks) > 0 {
		t.Errorf("pg_stat_activity on the target showed the source's password %d times, e.g. %s", len(s.leaks),
			strings.ReplaceAll(s.leaks[0], password, "<password>"))
	}
	t.Logf("%d samples, %d with the subscription's statement", s.samples, s.waiting)
}

// The subscription connects with the credentials this process uses:
// PGPASSWORD, or a passfile, carried into its connection string (the
// target server's libpq does not see this process's environment).
// Preflight checks from the target that they work. Not parallel: it sets
// the environment.
func TestSubscriptionCredentials(t *testing.T) {
	const password = "from-the-environment"
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Password: password})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	noPassword := src.ConnStringAs(localpg.SuperuserDefault, "", "postgres")
	passfile := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(passfile, []byte(fmt.Sprintf("127.0.0.1:%d:*:%s:%s\n", src.Port(), localpg.SuperuserDefault, password)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, pgpassword, pgpassfile string }{
		{"PGPASSWORD", password, empty},
		{"passfile", "", passfile},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PGPASSWORD", c.pgpassword)
			t.Setenv("PGPASSFILE", c.pgpassfile)
			sp := spec("credentials "+c.name, src, "t", dst, "t")
			sp.Source = noPassword
			st := startStreaming(t, sp)
			execSQL(t, src, "t", `INSERT INTO orders (kunde, amount) VALUES (1, 1)`)
			catchUp(t, st, time.Minute)
			if err := st.Abort(testCtx(t, time.Minute)); err != nil {
				t.Fatal(err)
			}
		})
	}
	if strings.Contains(dst.Log(), password) {
		t.Error("the target's log shows the password")
	}
}
