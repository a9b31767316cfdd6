package cutover

import (
	"errors"
	"fmt"
	"strings"
)

// What a run over a thousand tenants says of them stays readable: the
// first few, and how many more.

// joinSome joins the first few errors and counts the others.
func joinSome(errs []error) error {
	const shown = 3
	var out []error
	more := 0
	for _, err := range errs {
		switch {
		case err == nil:
		case len(out) < shown:
			out = append(out, err)
		default:
			more++
		}
	}
	if more > 0 {
		out = append(out, fmt.Errorf("and %d more error(s)", more))
	}
	return errors.Join(out...)
}

// joinFirst joins the first n items and counts the others.
func joinFirst(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
