package fleetjobs

import (
	"fmt"

	"github.com/riverqueue/river"
)

// Register adds a worker for each of daisychain's job kinds to the host's
// workers, which the host then gives to its own river.Client (its queues,
// its logger, its timeouts: see the package documentation for
// JobTimeout and RescueStuckJobsAfter). Call it once, before
// river.NewClient.
//
// An invalid cfg is refused with ErrInvalidConfig, registering nothing.
// A kind the workers have already is an error from River; the kinds
// registered before it stay registered, so treat it as fatal at start-up.
func Register(workers *river.Workers, cfg *Config) error {
	if workers == nil {
		return fmt.Errorf("%w: workers is nil: pass the *river.Workers the host's client will run", ErrInvalidConfig)
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	c := cfg.withDefaults()
	// One line per kind: the kinds to come (convert, chain) take theirs
	// here, over the same Config.
	adds := []func() error{
		func() error { return river.AddWorkerSafely(workers, &moveWorker{cfg: c}) },
		func() error { return river.AddWorkerSafely(workers, &retireWorker{cfg: c}) },
		func() error { return river.AddWorkerSafely(workers, &takeoverWorker{mw: moveWorker{cfg: c}}) },
	}
	if c.Planner != nil {
		adds = append(adds,
			func() error { return river.AddWorkerSafely(workers, &drainWorker{cfg: c}) },
			func() error { return river.AddWorkerSafely(workers, &refillWorker{cfg: c}) })
	}
	for _, add := range adds {
		if err := add(); err != nil {
			return fmt.Errorf("fleetjobs: register: %w", err)
		}
	}
	return nil
}
