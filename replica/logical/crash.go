package logical

import (
	"errors"
	"sync"
)

// crashPoints are set by tests only (export_test.go): the Start of the
// stream with a given ID stops at the named point and returns
// errCrashed, leaving everything as it is, as if its process had been
// killed there.
var crashPoints struct {
	sync.Mutex
	byID map[string]string
}

// Points where a test can make a Start stop.
const (
	// crashDatabaseCreated: after CREATE DATABASE on the target, before
	// the database carries the stream's marker.
	crashDatabaseCreated = "database created"
)

var errCrashed = errors.New("logical: stopped at a crash point (test)")

// crashAt reports whether a test asked the Start of this stream to stop
// at point.
func (e *env) crashAt(point string) bool {
	crashPoints.Lock()
	defer crashPoints.Unlock()
	return crashPoints.byID[e.spec.ID] == point
}
