package fleetjobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/riverqueue/river"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// TestRegisterRefusesInvalidConfig: a Config without Mover or Journal, or
// with negative durations, is refused with an error naming each field,
// and registers nothing (a valid Config registers into the same Workers
// afterwards, which River refuses for a kind registered twice).
func TestRegisterRefusesInvalidConfig(t *testing.T) {
	t.Parallel()
	workers := river.NewWorkers()
	err := fleetjobs.Register(workers, &fleetjobs.Config{MoveTimeout: -1, BusySnooze: -1, FanOutTimeout: -1, TakeoverAfter: -1, DrainPoll: -1})
	if !errors.Is(err, fleetjobs.ErrInvalidConfig) || !errors.Is(err, fleet.ErrInvalid) {
		t.Fatalf("Register: %v, want ErrInvalidConfig, which is also fleet.ErrInvalid", err)
	}
	for _, field := range []string{"Mover", "Journal", "MoveTimeout", "BusySnooze", "FanOutTimeout", "TakeoverAfter", "DrainPoll"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	if err := fleetjobs.Register(nil, &fleetjobs.Config{}); !errors.Is(err, fleetjobs.ErrInvalidConfig) || !strings.Contains(err.Error(), "workers") {
		t.Errorf("Register(nil workers): %v, want ErrInvalidConfig naming workers", err)
	}
	// Register only keeps the Mover for the jobs; this one never runs.
	if err := fleetjobs.Register(workers, &fleetjobs.Config{Mover: &cutover.Mover{}, Journal: &cutover.MemoryJournal{}}); err != nil {
		t.Errorf("Register after refusals: %v, want the kinds still free", err)
	}
}

// TestInsertRefusesIncompleteArgs: a move without a move ID, tenant or
// target is refused before River sees it, naming each field.
func TestInsertRefusesIncompleteArgs(t *testing.T) {
	t.Parallel()
	// Refused before the client is used: there is none.
	_, err := fleetjobs.Insert(context.Background(), nil, fleetjobs.MoveArgs{}, nil)
	if !errors.Is(err, fleetjobs.ErrInvalidArgs) || !errors.Is(err, fleet.ErrInvalid) {
		t.Fatalf("InsertMove of empty args: %v, want ErrInvalidArgs, which is also fleet.ErrInvalid", err)
	}
	for _, field := range []string{"MoveID", "Tenant", "Target"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}

// TestInsertRefusesIncompleteFanOuts: drains, refills, conversions and
// chains with missing or bad fields are refused before River sees them,
// naming each field.
func TestInsertRefusesIncompleteFanOuts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		insert func() error
		fields []string
	}{
		{"drain", func() error {
			_, err := fleetjobs.Insert(ctx, nil, fleetjobs.DrainArgs{InFlight: -1, MaxMoves: -1}, nil)
			return err
		}, []string{"DrainID", "Instance", "InFlight", "MaxMoves"}},
		{"refill", func() error {
			_, err := fleetjobs.Insert(ctx, nil, fleetjobs.RefillArgs{RefillID: strings.Repeat("r", 150), Instance: "pg-a"}, nil)
			return err
		}, []string{"RefillID is 150 bytes", "Sources"}},
		{"convert", func() error {
			_, err := fleetjobs.Insert(ctx, nil, fleetjobs.ConvertArgs{}, nil)
			return err
		}, []string{"ConvertID", "NewInstance"}},
		{"chain", func() error {
			_, err := fleetjobs.Insert(ctx, nil, fleetjobs.ChainArgs{ChainID: "c", InFlight: -1}, nil)
			return err
		}, []string{"Instances and Spares", "Threshold", "InFlight"}},
	} {
		err := c.insert()
		if !errors.Is(err, fleetjobs.ErrInvalidArgs) {
			t.Errorf("%s: %v, want ErrInvalidArgs", c.name, err)
			continue
		}
		for _, f := range c.fields {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("%s: error %q does not say %q", c.name, err, f)
			}
		}
	}
}
