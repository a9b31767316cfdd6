package cutover

import (
	"context"
	"fmt"
	"time"

	"github.com/daisychain-db/daisychain/replica"
)

// Measurement is what one move, conversion or rehearsal measured: the
// shape of what it moved, and how long each step and each of the
// stream's phases took. A run that starts and ends in one call journals
// it with its last step, if the Journal is a MeasurementStore; the
// RateModel is derived from the last ones.
type Measurement struct {
	Move string `json:"move"`
	// Kind is "move", "convert" or "rehearsal".
	Kind   string    `json:"kind"`
	Tenant string    `json:"tenant,omitempty"`
	Source string    `json:"source"`
	Target string    `json:"target"`
	At     time.Time `json:"at"`
	// Shape of the tenant database when the run started; for a
	// conversion, Bytes of the instance.
	Shape Shape `json:"shape"`
	// Tenants the window held: 1 for a move.
	Tenants int `json:"tenants"`
	// Steps in the order they ran, each with its duration.
	Steps []StepTiming `json:"steps"`
	// Phases of the stream's start as the stream timed them (schema,
	// copy, indexes), then CatchUpTail: from the stream's streaming phase
	// to the end of the catch-up.
	Phases      []replica.PhaseTiming `json:"phases,omitempty"`
	CatchUpTail time.Duration         `json:"catch_up_tail_ns"`
	// BytesCopied and RowsCopied by the initial copy.
	BytesCopied int64 `json:"bytes_copied"`
	RowsCopied  int64 `json:"rows_copied"`
	// ChangesPerSecond is the database's write rate (rows changed per
	// second) from the start of the run to just before its window.
	ChangesPerSecond float64 `json:"changes_per_second"`
	// Window is the window's length (a rehearsal's: barrier to
	// snapshot, with nothing fenced).
	Window time.Duration `json:"window_ns"`
	// Total is the run's length, first step to last.
	Total time.Duration `json:"total_ns"`
	// Verify is the level the run verified at (its verify step's time
	// depends on it).
	Verify replica.VerifyLevel `json:"verify"`
}

// Measurement kinds.
const (
	MeasuredMove      = "move"
	MeasuredConvert   = "convert"
	MeasuredRehearsal = "rehearsal"
)

// Step is how long a step took; 0 when it did not run.
func (m *Measurement) Step(s Step) time.Duration {
	var d time.Duration
	for _, t := range m.Steps {
		if t.Step == s {
			d += t.Duration
		}
	}
	return d
}

// Phase is how long the stream spent in a phase; 0 when it was not
// timed.
func (m *Measurement) Phase(p replica.Phase) time.Duration {
	for _, t := range m.Phases {
		if t.Phase == p {
			return t.Duration
		}
	}
	return 0
}

// CopyRate is bytes copied per second of the copy phase; 0 when not
// timed.
func (m *Measurement) CopyRate() float64 {
	return perSecond(float64(m.BytesCopied), m.Phase(replica.PhaseCopy))
}

// RowRate is rows copied per second of the copy phase; 0 when not
// timed.
func (m *Measurement) RowRate() float64 {
	return perSecond(float64(m.RowsCopied), m.Phase(replica.PhaseCopy))
}

// IndexTimePerGB is the indexes phase's time per GiB of index; 0 when
// not timed or nothing was indexed.
func (m *Measurement) IndexTimePerGB() time.Duration {
	d := m.Phase(replica.PhaseIndexes)
	if d == 0 || m.Shape.IndexBytes == 0 {
		return 0
	}
	return time.Duration(float64(d) * float64(1<<30) / float64(m.Shape.IndexBytes))
}

func perSecond(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// String is one line: what was measured and its rates.
func (m *Measurement) String() string {
	return fmt.Sprintf("%s %s %s->%s: %d bytes (%d tables, %d of index), copy %.1f MB/s %.0f rows/s, index %s/GiB, catch-up tail %s at %.0f changes/s, window %s, total %s",
		m.Kind, m.Move, m.Source, m.Target, m.Shape.Bytes, m.Shape.Tables, m.Shape.IndexBytes,
		m.CopyRate()/1e6, m.RowRate(), m.IndexTimePerGB().Round(time.Millisecond), m.CatchUpTail.Round(time.Millisecond),
		m.ChangesPerSecond, m.Window.Round(time.Millisecond), m.Total.Round(time.Millisecond))
}

// MeasurementStore is an optional capability of a Journal, found by type
// assertion: it keeps what runs measured, for the RateModel. A Mover
// whose Journal lacks it estimates from this library's defaults.
// PostgresJournal and MemoryJournal have it, and keep the newest
// MeasurementsKeptPerPair of each instance pair: a model reads only the
// newest, and a fleet's history of moves would otherwise grow without
// end.
type MeasurementStore interface {
	// RecordMeasurement keeps m; recording a move's again replaces it.
	RecordMeasurement(ctx context.Context, m Measurement) error
	// Measurements lists the newest measurements first, at most
	// opts.Limit of them. Its cost grows with what it returns, not with
	// the history.
	Measurements(ctx context.Context, opts *MeasurementsOpts) ([]Measurement, error)
}

// MeasurementsKeptPerPair is how many measurements of one instance pair
// (source, target) PostgresJournal and MemoryJournal keep: recording one
// more drops the oldest.
const MeasurementsKeptPerPair = 100

// MeasurementsLimitDefault is MeasurementsOpts.Limit when 0.
const MeasurementsLimitDefault = 20

// MeasurementsOpts selects measurements; nil means the newest
// MeasurementsLimitDefault of every kind and pair.
type MeasurementsOpts struct {
	// Source and Target, if set, select the runs from Source to
	// Target: both or neither.
	Source, Target string
	// Kinds, if set, selects those kinds only.
	Kinds []string
	// Limit is the most returned. Default MeasurementsLimitDefault;
	// negative is refused.
	Limit int
}

func (o *MeasurementsOpts) withDefaults() (MeasurementsOpts, error) {
	var out MeasurementsOpts
	if o != nil {
		out = *o
	}
	if out.Limit < 0 {
		return out, fmt.Errorf("%w: MeasurementsOpts.Limit is %d: it must not be negative (0 means %d)", ErrInvalidConfig, out.Limit, MeasurementsLimitDefault)
	}
	if (out.Source == "") != (out.Target == "") {
		return out, fmt.Errorf("%w: MeasurementsOpts has Source %q and Target %q: set both, or neither for every pair", ErrInvalidConfig, out.Source, out.Target)
	}
	for _, k := range out.Kinds {
		switch k {
		case MeasuredMove, MeasuredConvert, MeasuredRehearsal:
		default:
			return out, fmt.Errorf("%w: MeasurementsOpts.Kinds has %q (want %q, %q or %q)", ErrInvalidConfig, k, MeasuredMove, MeasuredConvert, MeasuredRehearsal)
		}
	}
	if out.Limit == 0 {
		out.Limit = MeasurementsLimitDefault
	}
	return out, nil
}

func (o MeasurementsOpts) matches(m *Measurement) bool {
	if o.Source != "" && m.Source != o.Source || o.Target != "" && m.Target != o.Target {
		return false
	}
	if len(o.Kinds) == 0 {
		return true
	}
	for _, k := range o.Kinds {
		if m.Kind == k {
			return true
		}
	}
	return false
}

var (
	_ MeasurementStore = (*MemoryJournal)(nil)
	_ MeasurementStore = (*PostgresJournal)(nil)
)

// RecordMeasurement implements MeasurementStore.
func (j *MemoryJournal) RecordMeasurement(_ context.Context, m Measurement) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := range j.measured {
		if j.measured[i].Move == m.Move {
			j.measured = append(j.measured[:i], j.measured[i+1:]...)
			break
		}
	}
	j.measured = append(j.measured, m)
	kept := 0
	for i := len(j.measured) - 1; i >= 0; i-- {
		if o := &j.measured[i]; o.Source == m.Source && o.Target == m.Target {
			if kept++; kept > MeasurementsKeptPerPair {
				j.measured = append(j.measured[:i], j.measured[i+1:]...)
			}
		}
	}
	return nil
}

// Measurements implements MeasurementStore.
func (j *MemoryJournal) Measurements(_ context.Context, opts *MeasurementsOpts) ([]Measurement, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Measurement
	for i := len(j.measured) - 1; i >= 0 && len(out) < o.Limit; i-- {
		if o.matches(&j.measured[i]) {
			out = append(out, j.measured[i])
		}
	}
	return out, nil
}
