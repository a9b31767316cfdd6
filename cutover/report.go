package cutover

import (
	"fmt"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/replica"
)

// StepError is a move's failure: which move, at which step.
type StepError struct {
	Move string
	Step Step
	Err  error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("cutover: move %q: %s: %v", e.Move, e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// StepTiming is how long one step took.
type StepTiming struct {
	Step     Step          `json:"step"`
	Duration time.Duration `json:"duration_ns"`
	Err      string        `json:"error,omitempty"`
}

// Report is what a move did and measured.
type Report struct {
	Move string `json:"move"`
	// Kind is "move" (Move), "convert" (Convert), "revert" (Revert) or
	// "rehearsal" (Rehearse).
	Kind string `json:"kind"`
	// Reverts is the move a revert takes back.
	Reverts string `json:"reverts,omitempty"`
	// Tenant is the tenant moved; for a conversion, how many.
	Tenant string `json:"tenant"`
	// Tenants is how many tenants the window held: 1 for a move.
	Tenants int    `json:"tenants"`
	Source  string `json:"source"`
	Target  string `json:"target"`

	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Steps in the order they ran (a resumed move lists those of this
	// run only).
	Steps []StepTiming `json:"steps"`

	// Window is the write-unavailability window as the library saw it:
	// from pausing the route (or holding the first fence) to publishing
	// the route to the target, or back to the source on rollback.
	Window time.Duration `json:"window_ns"`
	// WindowBudget is the budget the window had.
	WindowBudget time.Duration `json:"window_budget_ns"`
	// BytesCopied by the stream's initial copy.
	BytesCopied int64 `json:"bytes_copied"`
	// Verified is the level the target was verified at: its snapshot
	// taken in the window, compared with the frozen source after the
	// switch. Off when it was not (VerifyError says why).
	Verified replica.VerifyLevel `json:"verified"`
	// VerifyMismatch says what differs when the verification found the
	// target unlike the source (replica.ErrVerifyMismatch): the switch is
	// done, so it is reported, not rolled back. Empty when nothing does.
	VerifyMismatch string `json:"verify_mismatch,omitempty"`
	// VerifyError says why the target could not be verified.
	VerifyError string `json:"verify_error,omitempty"`
	// Fences that were held, by name.
	Fences []string `json:"fences"`
	// StreamReconnects counts the times the window took its fences down
	// (the routes still paused) for a stream that lost the source inside
	// it to reconnect: the source restarted.
	StreamReconnects int `json:"stream_reconnects,omitempty"`
	// Reverse: a reverse stream carries the target's writes back to the
	// source copy from the switch on, so Revert can take the tenant back.
	Reverse bool `json:"reverse,omitempty"`

	// RolledBack is true when the tenant stayed on (or went back to) its
	// source; RollbackReason says why.
	RolledBack     bool   `json:"rolled_back"`
	RollbackReason string `json:"rollback_reason,omitempty"`
	// RevertedBy is the revert that took a move back (a report of Resume
	// of a reverted move).
	RevertedBy string `json:"reverted_by,omitempty"`
	// Resumed is true for a report of Resume.
	Resumed bool `json:"resumed,omitempty"`

	// Estimate is what the run was estimated to take when it started,
	// from the rate model; nil for a resumed run, or when its shape
	// could not be read.
	Estimate *Estimate `json:"estimate,omitempty"`
	// Measurement is what the run measured (and the journal keeps, if it
	// is a MeasurementStore); nil for a resumed run or one that did not
	// end done.
	Measurement *Measurement `json:"measurement,omitempty"`
}

// String is a readable summary.
func (r *Report) String() string {
	var b strings.Builder
	outcome := "moved"
	if r.RevertedBy != "" {
		outcome = "moved, then reverted by " + r.RevertedBy
	}
	if r.RolledBack {
		outcome = "rolled back (" + r.RollbackReason + ")"
	}
	switch r.Kind {
	case kindConvert:
		fmt.Fprintf(&b, "conversion %s: %d tenants %s -> %s: %s\n", r.Move, r.Tenants, r.Source, r.Target, outcome)
	case kindRehearsal:
		if !r.RolledBack {
			outcome = "rehearsed, its copy dropped"
		}
		fmt.Fprintf(&b, "rehearsal %s: tenant %s %s -> %s: %s\n", r.Move, r.Tenant, r.Source, r.Target, outcome)
	case kindRevert:
		if !r.RolledBack {
			outcome = "reverted"
		}
		fmt.Fprintf(&b, "revert %s of move %s: tenant %s %s -> %s: %s\n", r.Move, r.Reverts, r.Tenant, r.Source, r.Target, outcome)
	default:
		fmt.Fprintf(&b, "move %s: tenant %s %s -> %s: %s\n", r.Move, r.Tenant, r.Source, r.Target, outcome)
	}
	fmt.Fprintf(&b, "  window %s (budget %s), fences %s, verified %s, %d bytes copied, total %s\n",
		r.Window.Round(time.Millisecond), r.WindowBudget, strings.Join(r.Fences, "+"), r.Verified,
		r.BytesCopied, r.Finished.Sub(r.Started).Round(time.Millisecond))
	if e := r.Estimate; e != nil {
		fmt.Fprintf(&b, "  estimated %s (%s to %s), window %s, from %s\n", round(e.Total), round(e.Low), round(e.High),
			round(e.Window), e.Basis)
	}
	if r.StreamReconnects > 0 {
		fmt.Fprintf(&b, "  the stream lost the source inside the window and reconnected %d time(s), the fences down meanwhile\n", r.StreamReconnects)
	}
	if r.VerifyMismatch != "" {
		fmt.Fprintf(&b, "  VERIFY MISMATCH: %s\n", r.VerifyMismatch)
	}
	if r.VerifyError != "" {
		fmt.Fprintf(&b, "  not verified: %s\n", r.VerifyError)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "  %-15s %10s", s.Step, s.Duration.Round(100*time.Microsecond))
		if s.Err != "" {
			fmt.Fprintf(&b, "  error: %s", s.Err)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
