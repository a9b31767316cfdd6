package physical

import (
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/replica"
)

func TestEndOfLastRecord(t *testing.T) {
	const block, segment = 8192, 16 << 20
	cases := []struct{ insert, want replica.Position }{
		{0x1000028, 0x1000000},             // just after a segment's long header
		{0x1002018, 0x1002000},             // just after a page's short header
		{0x1002030, 0x1002030},             // inside a page
		{0x1000000 + 8192 + 40, 0x1002028}, // 40 bytes into a page is a record end there
	}
	for _, c := range cases {
		if got := endOfLastRecord(c.insert, block, segment); got != c.want {
			t.Errorf("endOfLastRecord(%s) = %s, want %s", c.insert, got, c.want)
		}
	}
}

func TestSlotName(t *testing.T) {
	a, b := slotName("Tenant Fleet/42 ünïcode"+strings.Repeat("x", 100)), slotName("Tenant Fleet/43 ünïcode"+strings.Repeat("x", 100))
	if a == b || len(a) > 63 || strings.Trim(a, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		t.Errorf("slot names %q and %q: want distinct, at most 63 bytes of [a-z0-9_]", a, b)
	}
}

func TestBackupConnStringHasNoPassword(t *testing.T) {
	for _, s := range []string{"postgres://u:pw%20x@h:5/db?sslmode=require", "host=h port=5 user=u password='pw x' sslmode=require"} {
		src, err := parseSource(s, "dcp_x")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(src.backupConnString, "pw") || src.password != "pw x" ||
			!strings.Contains(src.backupConnString, "application_name='dcp_x'") || !strings.Contains(src.backupConnString, "sslmode='require'") {
			t.Errorf("%q: backup %q, password %q", s, src.backupConnString, src.password)
		}
	}
}
