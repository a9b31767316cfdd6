package drain

import (
	"fmt"

	"github.com/daisychain-db/daisychain/fleet"
)

// Threshold is the level a drain gets an instance to (or a refill fills
// it up to): the same bounds as an instance's fleet.Limits, with the same
// meaning of zero (that dimension unconstrained), so it is that type. The
// name says what the bounds are for here: a target to get under, not the
// instance's capacity.
type Threshold = fleet.Limits

// Within reports whether t is at or under every set field of l.
func (t Totals) Within(l fleet.Limits) bool {
	return (l.MaxFiles == 0 || t.Files <= l.MaxFiles) &&
		(l.MaxTenants == 0 || t.Tenants <= l.MaxTenants) &&
		(l.MaxBytes == 0 || t.Bytes <= l.MaxBytes)
}

func validateThreshold(what string, th Threshold) error {
	if th.MaxFiles < 0 || th.MaxTenants < 0 || th.MaxBytes < 0 {
		return fmt.Errorf("%w: %s %+v has a negative field; zero means unconstrained", ErrInvalid, what, th)
	}
	return nil
}
