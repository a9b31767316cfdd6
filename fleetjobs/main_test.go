package fleetjobs_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain stops the shared fleet and its River client after the tests,
// before goleak looks for goroutines left running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(withSharedFleet{m}) }
