package logical

import "time"

// The tests wait a second, not half a minute, for a pg_restore that keeps
// failing. init runs before any test, so no test races with it.
func init() { restoreRetryFor = time.Second }
