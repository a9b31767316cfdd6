package replica_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Specs share the catalog's ID rule: a bad ID is ErrInvalidSpec naming the
// ID and the rule, from Spec and ConvertSpec alike.
func TestSpecIDs(t *testing.T) {
	good := replica.Spec{ID: "m1", Source: "host=a", Target: "host=b", SourceDatabase: "d", TargetDatabase: "d"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(%v): %v", good, err)
	}
	if err := (replica.ConvertSpec{ID: "c1", Source: "host=a"}).Validate(); err != nil {
		t.Fatalf("ConvertSpec.Validate: %v", err)
	}
	for _, id := range []string{"", strings.Repeat("i", 201), "a\nb"} {
		bad := good
		bad.ID = id
		for name, err := range map[string]error{
			"Spec":        bad.Validate(),
			"ConvertSpec": replica.ConvertSpec{ID: id, Source: "host=a"}.Validate(),
		} {
			if !errors.Is(err, replica.ErrInvalidSpec) || !errors.Is(err, fleet.ErrInvalid) || !strings.Contains(err.Error(), "ID ") ||
				!strings.Contains(err.Error(), "1 to 200 bytes without control characters") {
				t.Errorf("%s with ID %q: %v; want ErrInvalidSpec (also fleet.ErrInvalid) naming the ID and the rule", name, id, err)
			}
		}
	}
}
