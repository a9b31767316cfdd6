package fleetjobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/internal/idcheck"
)

// ErrMovesFailed: some moves of a drain or a refill did not move their
// tenant (rolled back, refused, or out of attempts); the job is cancelled
// with an error that names them, and its journal's last entry lists them.
var ErrMovesFailed = errors.New("fleetjobs: moves failed")

// FanOutOutput is what a drain or a refill did: its job's output and its
// journal's last entry.
type FanOutOutput struct {
	ID      string       `json:"id"`
	Planned int          `json:"planned"`
	Moved   []string     `json:"moved"` // tenants
	Failed  []FailedMove `json:"failed,omitempty"`
	// TakenOver are the moves whose worker died and that the drain gave
	// to another (a takeover job), not waiting for River to rescue their
	// jobs.
	TakenOver []string `json:"taken_over,omitempty"`
}

// FailedMove is a move of a drain that did not move its tenant.
type FailedMove struct {
	Tenant string `json:"tenant"`
	MoveID string `json:"move_id"`
	Error  string `json:"error"`
}

// fanOut is one drain or refill, as one attempt of its job sees it.
type fanOut struct {
	cfg         *Config
	job         *rivertype.JobRow
	id          string
	inFlight    int
	keepSources bool
	plan        func(context.Context) (*drain.Plan, error)
}

// run does one round: plan (once, journaled), see how each move stands,
// take up the moves whose worker died, enqueue the next ones, and snooze
// until a move ends (its job wakes this one) or Config.DrainPoll passes.
// The last round, once every move has settled, journals the outcome.
func (f *fanOut) run(ctx context.Context) error {
	entries, err := f.cfg.Journal.Entries(ctx, f.id)
	if err != nil && !errors.Is(err, cutover.ErrMoveNotFound) {
		return fmt.Errorf("fleetjobs: read the journal of %s: %w", f.id, err)
	}
	plan, over, err := journaledFanOut(f.id, entries)
	if err != nil {
		return river.JobCancel(err)
	}
	if over != nil {
		return f.finish(ctx, over, false)
	}
	if plan == nil {
		if plan, err = f.planOnce(ctx); err != nil {
			return err
		}
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	// A round looks at the moves under way only, so that a drain of N
	// tenants reads O(N) job rows in all, not in each of its N rounds;
	// the last round reads them all once, for the outcome.
	_, next, running, err := f.survey(ctx, client, plan, false)
	if err != nil {
		return err
	}
	if len(next) == 0 && running == 0 {
		out, next, running, err := f.survey(ctx, client, plan, true)
		if err != nil {
			return err
		}
		if len(next) == 0 && running == 0 {
			return f.finish(ctx, out, true)
		}
	}
	if err := f.enqueue(ctx, client, next[:min(len(next), max(0, f.inFlight-running))]); err != nil {
		return err
	}
	return river.JobSnooze(f.cfg.DrainPoll)
}

// survey sees how the plan's moves stand: the moves not enqueued yet
// (next), and how many are under way (running), taking up those whose
// worker died. With all, it reads every move job of the drain and tells
// each settled move's outcome; without, only the jobs not finalized (and
// the takeovers, few), and the moves enqueued are counted from the last
// ones (they are enqueued in plan order).
func (f *fanOut) survey(ctx context.Context, client *river.Client[pgx.Tx], plan *drain.Plan, all bool) (*FanOutOutput, []drain.Move, int, error) {
	jobs, takeovers, err := f.moveJobs(ctx, client, all)
	if err != nil {
		return nil, nil, 0, err
	}
	enqueued := 0
	if !all {
		if enqueued, err = f.enqueued(ctx, client, plan); err != nil {
			return nil, nil, 0, err
		}
	}
	out := &FanOutOutput{ID: f.id, Planned: len(plan.Moves), Moved: []string{}}
	var next []drain.Move
	running := 0
	for i, m := range plan.Moves {
		moveID := childMoveID(f.id, m.Tenant)
		job, takeover := jobs[moveID], takeovers[moveID]
		switch {
		case job == nil && takeover != nil:
			job = takeover // its own job is finalized (or cleaned); the takeover decides
		case job == nil && (all || i >= enqueued):
			next = append(next, m) // no job, or none left (River cleans finalized jobs after a while)
			continue
		case job == nil:
			continue // finalized: the last round tells how it ended
		}
		settled, err := f.settled(ctx, client, out, m, moveID, job, takeover)
		if err != nil {
			return nil, nil, 0, err
		}
		if !settled {
			running++
		}
	}
	return out, next, running, nil
}

// enqueued counts the plan's moves that have a job: they were enqueued
// in plan order, at most inFlight at a time, so the last inFlight jobs
// hold the furthest one.
func (f *fanOut) enqueued(ctx context.Context, client *river.Client[pgx.Tx], plan *drain.Plan) (int, error) {
	res, err := client.JobList(ctx, river.NewJobListParams().Kinds(KindMove).Metadata(string(childMeta{Parent: f.id}.encode())).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(max(f.inFlight, 1)))
	if err != nil {
		return 0, fmt.Errorf("fleetjobs: list the last moves of %s: %w", f.id, err)
	}
	last := map[string]bool{}
	for _, j := range res.Jobs {
		var a MoveArgs
		if json.Unmarshal(j.EncodedArgs, &a) == nil {
			last[a.MoveID] = true
		}
	}
	n := 0
	for i, m := range plan.Moves {
		if last[childMoveID(f.id, m.Tenant)] {
			n = i + 1
		}
	}
	return n, nil
}

// planOnce plans and journals the plan as the journal's first entry: if
// another attempt journaled one first, that one is the plan.
func (f *fanOut) planOnce(ctx context.Context) (*drain.Plan, error) {
	plan, err := f.plan(ctx)
	if err != nil {
		if errors.Is(err, drain.ErrInvalid) || errors.Is(err, drain.ErrUnplaced) {
			return nil, river.JobCancel(fmt.Errorf("fleetjobs: plan %s: %w", f.id, err))
		}
		return nil, fmt.Errorf("fleetjobs: plan %s: %w", f.id, err)
	}
	for _, m := range plan.Moves {
		if err := idcheck.Check("move ID", childMoveID(f.id, m.Tenant)); err != nil {
			return nil, river.JobCancel(fmt.Errorf("%w: %s: %w: shorten the ID", ErrInvalidArgs, f.id, err))
		}
	}
	detail, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	_, err = f.cfg.Journal.Append(ctx, cutover.Entry{Move: f.id, Kind: cutover.KindDrain, Seq: 1,
		Step: cutover.StepPlan, Status: cutover.StatusFinished, Detail: detail})
	if errors.Is(err, cutover.ErrMoveIDUsed) {
		entries, err := f.cfg.Journal.Entries(ctx, f.id)
		if err != nil {
			return nil, err
		}
		journaled, _, err := journaledFanOut(f.id, entries)
		if err != nil || journaled == nil {
			return nil, river.JobCancel(cmp.Or(err, fmt.Errorf("%w: %s", ErrMoveIDConflict, f.id)))
		}
		return journaled, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleetjobs: journal the plan of %s: %w", f.id, err)
	}
	f.cfg.Logger.InfoContext(ctx, "fleetjobs: planned", "id", f.id, "moves", len(plan.Moves))
	return plan, nil
}

// journaledFanOut reads a drain's journal: its plan, and its outcome once
// it is over. A journal of another kind is ErrMoveIDConflict.
func journaledFanOut(id string, entries []cutover.Entry) (plan *drain.Plan, over *FanOutOutput, err error) {
	if len(entries) == 0 {
		return nil, nil, nil
	}
	if k := entries[0].Kind; k != cutover.KindDrain {
		return nil, nil, fmt.Errorf("%w: %s names a %s journal, not a drain's or a refill's", ErrMoveIDConflict, id, cmp.Or(k, cutover.KindMove))
	}
	for _, e := range entries {
		switch {
		case e.Step == cutover.StepPlan && e.Status == cutover.StatusFinished:
			plan = &drain.Plan{}
			if err := json.Unmarshal(e.Detail, plan); err != nil {
				return nil, nil, fmt.Errorf("fleetjobs: the journaled plan of %s is unreadable: %w", id, err)
			}
		case e.Terminal():
			over = &FanOutOutput{}
			if err := json.Unmarshal(e.Detail, over); err != nil {
				return nil, nil, fmt.Errorf("fleetjobs: the journaled outcome of %s is unreadable: %w", id, err)
			}
		}
	}
	return plan, over, nil
}

// activeStates are the states of a job not finalized.
var activeStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled}

// moveJobs lists this drain's move jobs (all of them, or those not
// finalized) and its takeover jobs (all: one per move whose worker died),
// by move ID: of a move's takeovers, the latest generation.
func (f *fanOut) moveJobs(ctx context.Context, client *river.Client[pgx.Tx], all bool) (moves, takeovers map[string]*rivertype.JobRow, err error) {
	moves, takeovers = map[string]*rivertype.JobRow{}, map[string]*rivertype.JobRow{}
	meta := string(childMeta{Parent: f.id}.encode())
	lists := []*river.JobListParams{river.NewJobListParams().Kinds(KindTakeover).Metadata(meta)}
	if all {
		lists = append(lists, river.NewJobListParams().Kinds(KindMove).Metadata(meta))
	} else {
		lists = append(lists, river.NewJobListParams().Kinds(KindMove).Metadata(meta).States(activeStates...))
	}
	for _, params := range lists {
		params = params.First(10_000)
		for {
			res, err := client.JobList(ctx, params)
			if err != nil {
				return nil, nil, fmt.Errorf("fleetjobs: list the moves of %s: %w", f.id, err)
			}
			for _, j := range res.Jobs {
				var a MoveArgs
				if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
					continue
				}
				if j.Kind == KindTakeover {
					if held := takeovers[a.MoveID]; held == nil || held.ID < j.ID { // the latest generation
						takeovers[a.MoveID] = j
					}
				} else {
					moves[a.MoveID] = j
				}
			}
			if len(res.Jobs) < 10_000 {
				break
			}
			params = params.After(res.LastCursor)
		}
	}
	return moves, takeovers, nil
}

// settled says whether a move of the drain is over, adding its outcome
// to out. The job that decides is its latest takeover job if it has one,
// else its own. A job River finalized is over; so is one still running
// whose journal says the move is over: rolled back, or done and, unless
// the drain keeps sources, retired (a drain is over once the instance it
// drains is free). A running job whose worker died is taken over (see
// takeOver), a takeover job too.
func (f *fanOut) settled(ctx context.Context, client *river.Client[pgx.Tx], out *FanOutOutput, m drain.Move, moveID string, job, takeover *rivertype.JobRow) (bool, error) {
	failed := func(why string) (bool, error) {
		out.Failed = append(out.Failed, FailedMove{Tenant: m.Tenant, MoveID: moveID, Error: why})
		return true, nil
	}
	generation := 0
	if takeover != nil {
		out.TakenOver = append(out.TakenOver, moveID)
		job = takeover
		var a TakeoverArgs
		_ = json.Unmarshal(takeover.EncodedArgs, &a)
		generation = a.Generation
	}
	switch job.State {
	case rivertype.JobStateCompleted:
		out.Moved = append(out.Moved, m.Tenant)
		return true, nil
	case rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		why := string(job.State)
		if n := len(job.Errors); n > 0 {
			why = job.Errors[n-1].Error
		}
		return failed(why)
	case rivertype.JobStateRunning:
	default:
		return false, nil // waiting for a worker, or for a retry
	}
	jm, err := readJournal(ctx, f.cfg.Journal, moveID)
	if err != nil {
		return false, err
	}
	switch {
	case jm.state == moveRolledBack:
		return failed("rolled back")
	case jm.retired(), jm.state == moveDone && f.keepSources:
		out.Moved = append(out.Moved, m.Tenant)
		return true, nil
	}
	return false, f.takeOver(ctx, client, m, moveID, job, jm, generation+1)
}

// takeOver enqueues a takeover job (of the given generation) for a
// running job whose worker died (see workerDied).
func (f *fanOut) takeOver(ctx context.Context, client *river.Client[pgx.Tx], m drain.Move, moveID string, job *rivertype.JobRow, jm journaledMove, generation int) error {
	if died, err := workerDied(ctx, f.cfg, moveID, job, jm); err != nil || !died {
		return err
	}
	f.cfg.Logger.InfoContext(ctx, "fleetjobs: taking over a move whose worker died", "id", f.id, "move", moveID,
		"job", job.ID, "journal", jm.state.String(), "generation", generation)
	_, err := Insert(ctx, client, TakeoverArgs{MoveID: moveID, Tenant: m.Tenant, Target: m.To, Generation: generation},
		&river.InsertOpts{Metadata: f.childMeta()})
	if err != nil {
		return fmt.Errorf("fleetjobs: take over %s: %w", moveID, err)
	}
	return nil
}

// childMeta is the metadata of the drain's move and takeover jobs.
func (f *fanOut) childMeta() []byte {
	return childMeta{Parent: f.id, ParentJob: f.job.ID, Retire: !f.keepSources}.encode()
}

// enqueue inserts the move jobs of moves, in one round trip. Each is
// unique by its move ID, so a round cut off after inserting enqueues
// nothing twice.
func (f *fanOut) enqueue(ctx context.Context, client *river.Client[pgx.Tx], moves []drain.Move) error {
	if len(moves) == 0 {
		return nil
	}
	meta := f.childMeta()
	params := make([]river.InsertManyParams, len(moves))
	for i, m := range moves {
		params[i] = river.InsertManyParams{
			Args:       MoveArgs{MoveID: childMoveID(f.id, m.Tenant), Tenant: m.Tenant, Target: m.To},
			InsertOpts: &river.InsertOpts{UniqueOpts: uniqueByID, Metadata: meta},
		}
	}
	if _, err := client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("fleetjobs: enqueue the moves of %s: %w", f.id, err)
	}
	return nil
}

// finish journals the outcome (once) and ends the job: completed if
// every move moved its tenant, else cancelled with ErrMovesFailed.
func (f *fanOut) finish(ctx context.Context, out *FanOutOutput, journal bool) error {
	if journal {
		defer wakeParent(ctx, f.cfg.Logger, metaOf(f.job)) // a chain's stage, once
		detail, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if _, err := f.cfg.Journal.Append(ctx, cutover.Entry{Move: f.id, Kind: cutover.KindDrain,
			Step: cutover.StepDone, Status: cutover.StatusFinished, Detail: detail}); err != nil {
			return fmt.Errorf("fleetjobs: journal the outcome of %s: %w", f.id, err)
		}
		f.cfg.Logger.InfoContext(ctx, "fleetjobs: settled", "id", f.id, "moved", len(out.Moved), "failed", len(out.Failed),
			"taken_over", len(out.TakenOver))
	}
	if len(out.Failed) == 0 {
		return river.RecordOutput(ctx, out)
	}
	lines := make([]string, 0, 3)
	for _, m := range out.Failed[:min(3, len(out.Failed))] {
		lines = append(lines, fmt.Sprintf("%s (%s): %s", m.Tenant, m.MoveID, m.Error))
	}
	return river.JobCancel(fmt.Errorf("%w: %d of %d of %s (the journal lists them all), first: %s", ErrMovesFailed,
		len(out.Failed), out.Planned, f.id, strings.Join(lines, "; ")))
}

// childMoveID names the move of tenant within drain or refill id.
func childMoveID(id, tenant string) string { return id + "/" + tenant }
