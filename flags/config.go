package flags

import (
	"errors"
	"fmt"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/sentinel"
)

// ErrInvalidConfig: a constructor was given settings it cannot work
// with (NewRouter, NewResolver, NewPostgresProvider); the error names
// each field and what to fix, and nothing was started or connected. It is
// also fleet.ErrInvalid under errors.Is.
var ErrInvalidConfig = sentinel.New("flags: invalid config", fleet.ErrInvalid)

// invalidConfig joins the refusals of a config's fields, if any, under
// ErrInvalidConfig.
func invalidConfig(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}
