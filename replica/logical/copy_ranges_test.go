package logical

import (
	"strings"
	"testing"
)

// splitRanges: a table larger than the range size is cut into
// contiguous block ranges from block 0, the last open-ended, whose bytes
// add up to the table's; a table no larger, or any table when ranges
// cannot be used (before PostgreSQL 14), is copied whole.
func TestSplitRanges(t *testing.T) {
	const block = 8192
	big := &copyTable{name: "big", size: 10*block*100 + 3*block}
	exact := &copyTable{name: "exact", size: 100 * block}
	small := &copyTable{name: "small", size: 5 * block}
	empty := &copyTable{name: "empty"}
	ranges := splitRanges([]*copyTable{big, exact, small, empty}, 100*block, block, true)
	var got []string
	var bigBytes int64
	next := int64(0)
	for i, r := range ranges {
		got = append(got, r.t.name)
		if r.t != big {
			if r.split {
				t.Errorf("%s is split", r.t.name)
			}
			continue
		}
		bigBytes += r.bytes
		if !r.split || r.from != next {
			t.Errorf("range %d of big: %+v, want from block %d", i, r, next)
		}
		last := i+1 == len(ranges) || ranges[i+1].t != big
		if last != (r.to == 0) {
			t.Errorf("range %d of big ends at %d; only the last is open-ended", i, r.to)
		}
		next = r.to
	}
	if want := "big big big big big big big big big big big exact small empty"; strings.Join(got, " ") != want {
		t.Errorf("ranges %s, want %s", strings.Join(got, " "), want)
	}
	if bigBytes != big.size || big.left != 11 || exact.left != 1 || empty.left != 1 {
		t.Errorf("big: %d bytes in %d ranges, want %d in 11; exact %d, empty %d ranges, want 1", bigBytes, big.left, big.size, exact.left, empty.left)
	}
	if r := splitRanges([]*copyTable{big}, 100*block, block, false); len(r) != 1 || r[0].split {
		t.Errorf("without TID range scans: %d ranges, want big whole", len(r))
	}
}
