package logical

import "time"

// The tests wait a second, not half a minute, for a pg_restore that keeps
// failing. init runs before any test, so no test races with it.
// A target that is down is given up after 3 s, not 15.
func init() {
	restoreRetryFor = time.Second
	targetGiveUp = 3 * time.Second
}

// CrashAt makes the Start of the stream with ID id stop at point (see
// crashPoints) as if its process had been killed there; "" clears it.
func CrashAt(id, point string) {
	crashPoints.Lock()
	defer crashPoints.Unlock()
	if crashPoints.byID == nil {
		crashPoints.byID = map[string]string{}
	}
	crashPoints.byID[id] = point
}

// CrashDatabaseCreated is crashDatabaseCreated for the tests.
const CrashDatabaseCreated = crashDatabaseCreated
