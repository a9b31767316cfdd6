package cutover

import (
	"errors"

	"github.com/daisychain-db/daisychain/internal/sentinel"
	"github.com/daisychain-db/daisychain/replica"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrPreflight: the move cannot start; the error lists every problem
	// and what to fix. Nothing was changed. It is also
	// replica.ErrPreflight under errors.Is, the one preflight concept; an
	// error wrapping only replica.ErrPreflight (a stream that refused to
	// start after the move began) is not this one.
	ErrPreflight = sentinel.New("cutover: preflight failed", replica.ErrPreflight)
	// ErrBudgetExceeded: the window took longer than its budget, so the
	// move was rolled back.
	ErrBudgetExceeded = errors.New("cutover: window budget exceeded")
	// ErrCatchUpTimeout: the stream did not get close enough to the source
	// within CatchUpTimeout, so the move was rolled back before any window.
	ErrCatchUpTimeout = errors.New("cutover: stream did not catch up in time")
	// ErrRolledBack: the move was rolled back; the tenant is served by its
	// source. The error also wraps the reason.
	ErrRolledBack = errors.New("cutover: move rolled back")
	// ErrRouteConflict: someone else published a route for the tenant
	// during the move.
	ErrRouteConflict = errors.New("cutover: the tenant's route changed under the move")
)
