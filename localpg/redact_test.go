package localpg_test

import (
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/localpg"
)

// TestRedact: no form of connection string shows its password, and what
// does not carry one is shown.
func TestRedact(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in string
		keep     string
	}{
		{"URL userinfo", "postgres://postgres:s3cr%27t@127.0.0.1:5432/db?sslmode=disable", "127.0.0.1:5432/db"},
		{"URL query password", "postgres://postgres@127.0.0.1:5432/db?password=s3cr%27t&sslmode=disable", "sslmode=disable"},
		{"keywords quoted", `host=127.0.0.1 user=postgres password='s3cr\'t pw' dbname=db`, "host='127.0.0.1'"},
		{"passfile", "host=127.0.0.1 user=postgres passfile=/home/app/.pgpass dbname=db", "passfile='/home/app/.pgpass'"},
	} {
		got := localpg.Redact(c.in)
		if strings.Contains(got, "s3cr") {
			t.Errorf("%s: Redact = %q shows the password", c.name, got)
		}
		if !strings.Contains(got, c.keep) {
			t.Errorf("%s: Redact = %q, want it to show %q", c.name, got, c.keep)
		}
	}
}
