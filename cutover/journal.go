package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

var (
	// ErrMoveNotFound: the journal has no move with that ID.
	ErrMoveNotFound = errors.New("cutover: move not found in journal")
	// ErrMoveIDUsed: a move, conversion or chain with that ID was already
	// journaled (finished, or open for Resume); a new one needs a new ID.
	ErrMoveIDUsed = errors.New("cutover: the ID is already used")
	// ErrNotAMove: the ID names a journal that is not a move's or a
	// conversion's (a chain's, say), so Resume and Retire do not take it.
	ErrNotAMove = errors.New("cutover: not a move or a conversion")
)

// Status is what an Entry says of its step.
type Status string

// Statuses of a journaled step.
const (
	StatusStarted  Status = "started"  // about to run; written before it runs
	StatusFinished Status = "finished" // ran to completion
	StatusFailed   Status = "failed"   // ran and failed; Detail says why
)

// Kind says what a journal records, so that each is resumed by what can
// resume it.
type Kind string

// Kinds of journals.
const (
	// KindMove is a tenant move or a conversion: Mover.Resume takes it.
	KindMove Kind = "move"
	// KindChain is a daisy chain: drain.Runner.ResumeChain takes it.
	KindChain Kind = "chain"
	// KindDrain is a drain or a refill run as jobs: fleetjobs' drain
	// worker takes it up again from its journaled plan.
	KindDrain Kind = "drain"
)

// Entry is one line of a move's journal.
type Entry struct {
	// Move is the move's ID.
	Move string `json:"move"`
	// Kind of the journal. The first entry of a journal sets it (empty
	// means KindMove); a later entry may leave it empty, and Append
	// refuses one that names another kind. Entries sets it on each entry.
	Kind Kind `json:"kind,omitempty"`
	// Seq orders the move's entries; the journal assigns it. An entry
	// appended with Seq 1 must begin its journal: Append refuses it with
	// ErrMoveIDUsed, changing nothing, when the ID already has entries.
	Seq int64 `json:"seq"`
	// Step names the step.
	Step Step `json:"step"`
	// Status says whether the step started, finished or failed.
	Status Status `json:"status"`
	// At is when the entry was written; the journal assigns it.
	At time.Time `json:"at"`
	// Detail is the step's state as JSON (the plan, an epoch, a position,
	// an error message). It never holds secrets.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Terminal reports whether a journal that ends with e is over: a
// terminal step (done, rolled back, retired, reverse dropped, reverted)
// that finished. The step's
// name alone says nothing: a Retire that failed, or a done cut off before
// it finished, leaves its move open.
func (e Entry) Terminal() bool {
	return e.Status == StatusFinished && e.Step.terminal()
}

func (e Entry) check() error {
	if e.Move == "" || e.Step == "" || e.Status == "" {
		return fmt.Errorf("cutover: journal entry needs a move, a step and a status: %+v", e)
	}
	switch e.Kind {
	case "", KindMove, KindChain, KindDrain:
	default:
		return fmt.Errorf("cutover: journal entry of %q has unknown kind %q (want %q, %q or %q)", e.Move, e.Kind, KindMove, KindChain, KindDrain)
	}
	return nil
}

func (e Entry) kind() Kind {
	if e.Kind == "" {
		return KindMove
	}
	return e.Kind
}

// Journal is the durable record of moves' steps, so that Resume after a
// crash can complete or roll back a move. Implementations are safe for
// concurrent use.
type Journal interface {
	// Append writes an entry, assigning its Seq and At. It returns once
	// the entry is durable.
	Append(ctx context.Context, e Entry) (Entry, error)
	// Entries returns a move's entries in order, or an error wrapping
	// ErrMoveNotFound.
	Entries(ctx context.Context, moveID string) ([]Entry, error)
	// Open lists the journals of a kind whose last entry is not
	// Terminal, oldest first: for KindMove, the moves and conversions to
	// Resume.
	Open(ctx context.Context, kind Kind) ([]string, error)
}

// usedError is ErrMoveIDUsed for id, saying whether its journal is over.
func usedError(id string, last Entry) error {
	state := "open: Resume it"
	if last.Terminal() {
		state = fmt.Sprintf("over (%s)", last.Step)
	}
	return fmt.Errorf("%w: %q names a %s journal that is %s, or choose another ID", ErrMoveIDUsed, id, last.kind(), state)
}

// MemoryJournal is a Journal held in memory: for tests and for moves
// whose crash recovery the caller does not need. The zero value is ready.
type MemoryJournal struct {
	mu      sync.Mutex
	entries map[string][]Entry
	order   []string
	locks   memoryLocks
	// measured, oldest first (see MeasurementStore).
	measured []Measurement
}

var _ Journal = (*MemoryJournal)(nil)

// Append implements Journal.
func (j *MemoryJournal) Append(_ context.Context, e Entry) (Entry, error) {
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.entries == nil {
		j.entries = map[string][]Entry{}
	}
	es, ok := j.entries[e.Move]
	switch {
	case ok && e.Seq == 1:
		return Entry{}, usedError(e.Move, es[len(es)-1])
	case ok && e.Kind != "" && e.Kind != es[0].Kind:
		return Entry{}, fmt.Errorf("cutover: journal entry of %q has kind %q, the journal is a %s's", e.Move, e.Kind, es[0].Kind)
	case !ok:
		j.order = append(j.order, e.Move)
	}
	e.Kind = e.kind()
	if ok {
		e.Kind = es[0].Kind
	}
	e.Seq = int64(len(es) + 1)
	e.At = time.Now()
	e.Detail = slices.Clone(e.Detail)
	j.entries[e.Move] = append(es, e)
	return e, nil
}

// Entries implements Journal.
func (j *MemoryJournal) Entries(_ context.Context, moveID string) ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	es, ok := j.entries[moveID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrMoveNotFound, moveID)
	}
	return slices.Clone(es), nil
}

// Open implements Journal.
func (j *MemoryJournal) Open(_ context.Context, kind Kind) ([]string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, id := range j.order {
		es := j.entries[id]
		if es[0].Kind == kind && !es[len(es)-1].Terminal() {
			out = append(out, id)
		}
	}
	return out, nil
}
