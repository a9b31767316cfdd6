// Package sentinel makes a package's sentinel error one concept with a
// lower layer's: the package keeps its own name and message for its
// callers, and errors.Is also matches the lower layer's sentinel, so a
// caller who branches on the lower one catches both.
package sentinel

// New returns a sentinel error whose message is msg and which errors.Is
// matches against kind as well as against itself. The match goes one way:
// an error wrapping kind alone is not the new sentinel, so a package can
// still tell its own failures from the lower layer's.
func New(msg string, kind error) error {
	return &refined{msg: msg, kind: kind}
}

type refined struct {
	msg  string
	kind error
}

func (e *refined) Error() string { return e.msg }
func (e *refined) Unwrap() error { return e.kind }
