// Package idcheck holds the one rule for daisychain's IDs (instances,
// tenants, moves, streams, conversions): 1 to MaxLen bytes without control
// characters, so that an ID prints on one line in a log, a journal entry
// or an error, and fits the catalog's and journal's columns.
package idcheck

import (
	"fmt"
	"strings"
)

// MaxLen is the longest ID, in bytes.
const MaxLen = 200

// Check returns nil if id is a valid ID, else an error that names field
// (as in "tenant ID") and says the rule. Callers wrap it in their own
// package's sentinel.
func Check(field, id string) error {
	if id == "" || len(id) > MaxLen || HasControl(id) {
		return fmt.Errorf("%s %q must be 1 to %d bytes without control characters", field, id, MaxLen)
	}
	return nil
}

// HasControl reports whether s holds a control character (which would
// break a log line, and takes six bytes in JSON).
func HasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
