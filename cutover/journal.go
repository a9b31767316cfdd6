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

// ErrMoveNotFound: the journal has no move with that ID.
var ErrMoveNotFound = errors.New("cutover: move not found in journal")

// Status is what an Entry says of its step.
type Status string

// Statuses of a journaled step.
const (
	StatusStarted  Status = "started"  // about to run; written before it runs
	StatusFinished Status = "finished" // ran to completion
	StatusFailed   Status = "failed"   // ran and failed; Detail says why
)

// Entry is one line of a move's journal.
type Entry struct {
	// Move is the move's ID.
	Move string `json:"move"`
	// Seq orders the move's entries; the journal assigns it.
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
	// Open lists the moves whose journal does not end in a terminal step
	// (done or rolled back), oldest first: the ones to Resume.
	Open(ctx context.Context) ([]string, error)
}

// MemoryJournal is a Journal held in memory: for tests and for moves
// whose crash recovery the caller does not need. The zero value is ready.
type MemoryJournal struct {
	mu      sync.Mutex
	entries map[string][]Entry
	order   []string
	locks   map[string]bool
}

var _ Journal = (*MemoryJournal)(nil)

// Append implements Journal.
func (j *MemoryJournal) Append(_ context.Context, e Entry) (Entry, error) {
	if e.Move == "" || e.Step == "" || e.Status == "" {
		return Entry{}, fmt.Errorf("cutover: journal entry needs a move, a step and a status: %+v", e)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.entries == nil {
		j.entries = map[string][]Entry{}
	}
	if _, ok := j.entries[e.Move]; !ok {
		j.order = append(j.order, e.Move)
	}
	e.Seq = int64(len(j.entries[e.Move]) + 1)
	e.At = time.Now()
	e.Detail = slices.Clone(e.Detail)
	j.entries[e.Move] = append(j.entries[e.Move], e)
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
func (j *MemoryJournal) Open(context.Context) ([]string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, id := range j.order {
		es := j.entries[id]
		if !es[len(es)-1].Step.terminal() {
			out = append(out, id)
		}
	}
	return out, nil
}
