package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// kill is the worker killed in the middle of a move, as the parent saw
// the move just before.
type kill struct {
	Worker string       `json:"worker"`
	Move   string       `json:"move"`
	Step   cutover.Step `json:"step"` // the move's last journaled step
	// Done: after the drain, the move's journal says it is done (the
	// drain took it over), its tenant on the target.
	Done bool `json:"done"`
}

// killInMove waits until every job one of workers runs is a move that
// has switched and is not over, and kills that worker's process with
// SIGKILL (the first seen: the worker is not chosen beforehand, since
// with copies this fast a chosen one may run no move long enough). It
// returns nil, nil if the drain ends first or ctx is done.
//
// It kills after the switch, not in the copy: Resume completes a move
// whose switch went through and rolls back any other, so a kill in the
// copy ends that tenant's move rolled back (its drain then reports it
// failed, to be moved again under a new ID). A kill after the switch
// shows the drain taking over a dead worker's move and finishing it.
//
// Every job the worker runs must be such a move: a dead worker's job that
// has journaled nothing yet (waiting for a slot, MovesPerSource) is taken
// over only after fleetjobs.Config.TakeoverAfter, and could be a move
// about to start its copy; a round of the drain job itself is left to
// River's rescue, after its FanOutTimeout.
func killInMove(ctx context.Context, client *river.Client[pgx.Tx], journal cutover.Journal, workers []*process) (*kill, error) {
	// Often: with a fast copy, a move spends about 100 ms between its
	// switch and its end.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-tick.C:
		}
		res, err := client.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateRunning).First(1000))
		if err != nil {
			return nil, ctxOr(ctx, err)
		}
		running := map[string][]*rivertype.JobRow{}
		for _, j := range res.Jobs {
			running[lastAttempt(j)] = append(running[lastAttempt(j)], j)
		}
		for _, w := range workers {
			k, err := allSwitched(ctx, journal, w.id, running[w.id])
			if err != nil {
				return nil, err
			}
			if k != nil {
				return k, w.kill()
			}
		}
	}
}

// allSwitched returns the kill of worker if every job it runs is a move
// between its switch and its end, else nil.
func allSwitched(ctx context.Context, journal cutover.Journal, worker string, jobs []*rivertype.JobRow) (*kill, error) {
	var k *kill
	for _, j := range jobs {
		if j.Kind != fleetjobs.KindMove && j.Kind != fleetjobs.KindTakeover {
			return nil, nil
		}
		var args fleetjobs.MoveArgs
		if err := json.Unmarshal(j.EncodedArgs, &args); err != nil {
			return nil, err
		}
		entries, err := journal.Entries(ctx, args.MoveID)
		if err != nil || !switched(entries) {
			return nil, nil
		}
		if k == nil {
			k = &kill{Worker: worker, Move: args.MoveID, Step: entries[len(entries)-1].Step}
		}
	}
	return k, nil
}

// switched says whether a move's journal has its switch done and the
// move not yet done: it is between its switch and its end (its retire,
// after done, is not the middle of a move).
func switched(entries []cutover.Entry) bool {
	if entries[len(entries)-1].Terminal() {
		return false
	}
	var sw bool
	for _, e := range entries {
		switch {
		case e.Step == cutover.StepDone:
			return false
		case e.Step == cutover.StepSwitch && e.Status == cutover.StatusFinished:
			sw = true
		}
	}
	return sw
}

// lastAttempt is the River client ID that last took the job.
func lastAttempt(j *rivertype.JobRow) string {
	if len(j.AttemptedBy) == 0 {
		return ""
	}
	return j.AttemptedBy[len(j.AttemptedBy)-1]
}

// ctxOr returns nil once ctx is done (the drain ended), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
