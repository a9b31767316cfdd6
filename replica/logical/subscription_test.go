package logical_test

import (
	"strings"
	"testing"
	"time"

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

	// A password the target's view of the source refuses: the error
	// names the failure, not the password, and nothing is left.
	bad := spec(`refused \ "one"`, src, "t", dst, "refused")
	bad.SourceForTarget = src.ConnStringAs("postgres", wrong, "t")
	if st, err := provider.Start(ctx, bad); err == nil {
		_ = st.Abort(ctx)
		t.Fatal("Start with a wrong password for the subscription succeeded")
	} else if !strings.Contains(err.Error(), "create subscription") || strings.Contains(err.Error(), wrong) {
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
	for _, secret := range []string{password, wrong, `pa\\ss`, `wrong\\`} {
		if strings.Contains(log, secret) {
			t.Errorf("the target's log shows %q", secret)
		}
	}
}
