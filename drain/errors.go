package drain

import (
	"errors"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/sentinel"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInvalid: an argument is malformed; the error says which and how.
	// It is also fleet.ErrInvalid under errors.Is.
	ErrInvalid = sentinel.New("drain: invalid argument", fleet.ErrInvalid)
	// ErrUnplaced: the threshold cannot be reached because tenants that
	// would have to move fit nowhere. The error is a *PlacementError.
	ErrUnplaced = errors.New("drain: tenants could not be placed")
	// ErrMaxMoves: DrainOpts.MaxMoves moves were planned and the
	// threshold still does not hold.
	ErrMaxMoves = errors.New("drain: move limit reached before the threshold holds")
	// ErrChainInProgress: another Chain or ResumeChain of the chain runs,
	// in this process or another; the error names it and its holder.
	ErrChainInProgress = errors.New("drain: the chain is in progress elsewhere")
)
