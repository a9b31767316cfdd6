package idcheck_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/internal/idcheck"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheck(t *testing.T) {
	for _, id := range []string{"a", "tenant-42", "ünïcode", strings.Repeat("x", idcheck.MaxLen)} {
		if err := idcheck.Check("tenant ID", id); err != nil {
			t.Errorf("Check(%q): %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", idcheck.MaxLen+1), "a\nb", "tab\there", "del\x7f"} {
		err := idcheck.Check("tenant ID", id)
		if err == nil || !strings.HasPrefix(err.Error(), "tenant ID ") || !strings.Contains(err.Error(), "1 to 200 bytes") {
			t.Errorf("Check(%q): %v, want an error naming the tenant ID and the rule", id, err)
		}
	}
}
