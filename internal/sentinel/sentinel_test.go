package sentinel_test

import (
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/internal/sentinel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewIsBothOneWay(t *testing.T) {
	lower := errors.New("lower: invalid")
	upper := sentinel.New("upper: invalid", lower)
	err := fmt.Errorf("%w: field X is empty", upper)
	if !errors.Is(err, upper) || !errors.Is(err, lower) {
		t.Errorf("errors.Is(%v, upper) = %v, errors.Is(err, lower) = %v; want both true",
			err, errors.Is(err, upper), errors.Is(err, lower))
	}
	if got := err.Error(); got != "upper: invalid: field X is empty" {
		t.Errorf("message %q, want the upper sentinel's own", got)
	}
	if errors.Is(fmt.Errorf("%w: y", lower), upper) {
		t.Error("an error wrapping only the lower sentinel matches the upper one; want the match one way")
	}
}
