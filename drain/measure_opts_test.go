package drain_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
)

// TestMeasureRefusesUnknownFileCounting: a Files value that is no
// fleet.FileCounting is refused before anything is read, naming the field
// and the values that exist.
func TestMeasureRefusesUnknownFileCounting(t *testing.T) {
	_, err := drain.Measure(context.Background(), fleet.NewMemoryCatalog(), &drain.MeasureOpts{Files: "everything"})
	if !errors.Is(err, drain.ErrInvalid) || !errors.Is(err, fleet.ErrInvalid) ||
		!strings.Contains(err.Error(), "MeasureOpts.Files") || !strings.Contains(err.Error(), string(fleet.FileCountingDataDirectory)) {
		t.Errorf("Measure with Files %q: %v; want ErrInvalid naming the field and the choices", "everything", err)
	}
	for _, ok := range []fleet.FileCounting{fleet.FileCountingAuto, fleet.FileCountingDataDirectory, fleet.FileCountingPerDatabase} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
