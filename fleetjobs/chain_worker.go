package fleetjobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/internal/idcheck"
)

// KindChain is the job kind of a daisy chain.
const KindChain = "daisychain.chain"

// ChainArgs asks for a daisy chain (see drain.Runner.Chain) run as jobs:
// for each instance in order, a drain job onto the spares and the
// instances converted so far, a conversion job, then a refill job of the
// converted instance from the spares. The chain job starts each stage's
// job once the one before it has settled, and journals each stage in a
// journal of kind cutover.KindChain, so that it goes on from its stage
// whichever worker runs its next round.
type ChainArgs struct {
	// ChainID names the chain in the journal and makes the job unique.
	// Its stages' jobs are named ChainID/<n>-drain, -convert, -refill,
	// with an attempt number after a failed attempt.
	ChainID string `json:"chain_id" river:"unique"`
	// Instances to convert, in order, and the Spares that hold their
	// tenants meanwhile (drain.ChainRequest's).
	Instances []string `json:"instances"`
	Spares    []string `json:"spares"`
	// Threshold each instance is drained under before it is converted.
	Threshold drain.Threshold `json:"threshold"`
	// NewIDs names each instance's converted replica. Default: the
	// instance's ID with ".1" appended.
	NewIDs map[string]string `json:"new_ids,omitempty"`
	// InFlight of each drain and refill (DrainArgs'). Default
	// InFlightDefault.
	InFlight int `json:"in_flight,omitempty"`
}

// Kind implements river.JobArgs.
func (ChainArgs) Kind() string { return KindChain }

// InsertOpts implements river.JobArgsWithInsertOpts: one job per chain ID.
func (ChainArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: uniqueByID} }

func (a ChainArgs) validate() error {
	var errs []error
	if err := idcheck.Check("ChainID", a.ChainID); err != nil {
		errs = append(errs, err)
	}
	if len(a.Instances) == 0 || len(a.Spares) == 0 {
		errs = append(errs, errors.New("Instances and Spares are required: the instances to convert, and where their tenants wait"))
	}
	if a.Threshold.IsZero() {
		errs = append(errs, errors.New("Threshold sets no limit: set what each instance is drained under before its conversion"))
	}
	if a.InFlight < 0 {
		errs = append(errs, fmt.Errorf("InFlight is %d: it must not be negative (0 means %d)", a.InFlight, InFlightDefault))
	}
	return argsError(KindChain, errs)
}

// newID is the converted replica's ID of inst.
func (a ChainArgs) newID(inst string) string { return cmp.Or(a.NewIDs[inst], inst+".1") }

// Steps of a chain's journal: each stage's, then cutover.StepDone.
const (
	stepChainDrain   cutover.Step = "chain_drain"
	stepChainConvert cutover.Step = "chain_convert"
	stepChainRefill  cutover.Step = "chain_refill"
)

// chainStageDetail is a stage's journal entry detail.
type chainStageDetail struct {
	Instance string `json:"instance"`
	Job      string `json:"job"` // the stage's job's ID (DrainID, ConvertID or RefillID)
	Error    string `json:"error,omitempty"`
}

// chainWorker runs ChainArgs jobs, a round at a time.
type chainWorker struct {
	river.WorkerDefaults[ChainArgs]
	cfg Config
}

// Timeout bounds one round: its planning, or one look at its stage.
func (w *chainWorker) Timeout(*river.Job[ChainArgs]) time.Duration { return w.cfg.FanOutTimeout }

// Work plans the chain once, then runs it a stage at a time: it starts
// the stage's job, and snoozes until that job has settled (the job wakes
// it as it ends).
func (w *chainWorker) Work(ctx context.Context, job *river.Job[ChainArgs]) error {
	a := job.Args
	if err := a.validate(); err != nil {
		return river.JobCancel(err)
	}
	entries, err := w.cfg.Journal.Entries(ctx, a.ChainID)
	if errors.Is(err, cutover.ErrMoveNotFound) {
		entries, err = w.plan(ctx, a)
	}
	if err != nil {
		return err
	}
	if k := entries[0].Kind; k != cutover.KindChain || entries[0].Step != cutover.StepPlan {
		return river.JobCancel(fmt.Errorf("%w: %s names a %s journal that begins with %s, not a chain run as jobs",
			ErrMoveIDConflict, a.ChainID, cmp.Or(k, cutover.KindMove), entries[0].Step))
	}
	if entries[len(entries)-1].Terminal() {
		return nil
	}
	finished, attempts := map[string]bool{}, map[string]int{}
	for _, e := range entries {
		var d chainStageDetail
		if json.Unmarshal(e.Detail, &d) != nil || d.Instance == "" {
			continue
		}
		key := string(e.Step) + " " + d.Instance
		switch e.Status {
		case cutover.StatusFinished:
			finished[key] = true
		case cutover.StatusFailed:
			attempts[key]++
		}
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	children, err := w.children(ctx, client, a.ChainID)
	if err != nil {
		return err
	}
	for i, inst := range a.Instances {
		for _, step := range []cutover.Step{stepChainDrain, stepChainConvert, stepChainRefill} {
			key := string(step) + " " + inst
			if finished[key] {
				continue
			}
			childID := fmt.Sprintf("%s/%d-%s", a.ChainID, i, step[len("chain_"):])
			if n := attempts[key]; n > 0 {
				childID = fmt.Sprintf("%s-%d", childID, n+1)
			}
			d := chainStageDetail{Instance: inst, Job: childID}
			child := children[childID]
			if child == nil {
				if err := w.journal(ctx, a.ChainID, step, cutover.StatusStarted, d); err != nil {
					return err
				}
				w.cfg.Logger.InfoContext(ctx, "fleetjobs: chain stage", "chain", a.ChainID, "stage", step, "instance", inst, "job", childID)
				if child, err = w.start(ctx, client, job.JobRow, a, i, step, childID); err != nil {
					return err
				}
			}
			switch child.State {
			case rivertype.JobStateCompleted:
				if err := w.journal(ctx, a.ChainID, step, cutover.StatusFinished, d); err != nil {
					return err
				}
				continue
			case rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
				d.Error = string(child.State)
				if n := len(child.Errors); n > 0 {
					d.Error = child.Errors[n-1].Error
				}
				return river.JobCancel(errors.Join(
					fmt.Errorf("fleetjobs: chain %s: %s of %s failed (job %s): %s; enqueue the chain again to retry the stage",
						a.ChainID, step, inst, childID, d.Error),
					w.journal(context.WithoutCancel(ctx), a.ChainID, step, cutover.StatusFailed, d)))
			}
			if child.State == rivertype.JobStateRunning && step == stepChainConvert {
				if err := w.takeOverConversion(ctx, client, job.JobRow, child); err != nil {
					return err
				}
			}
			return river.JobSnooze(w.cfg.DrainPoll)
		}
	}
	if err := w.journal(ctx, a.ChainID, cutover.StepDone, cutover.StatusFinished, map[string]int{"instances": len(a.Instances)}); err != nil {
		return err
	}
	w.cfg.Logger.InfoContext(ctx, "fleetjobs: chain done", "chain", a.ChainID, "instances", len(a.Instances))
	return nil
}

// plan checks that the chain can be planned (a threshold it cannot reach,
// an instance it cannot refill, is refused before anything moves), then
// journals the chain as asked, as its journal's first entry.
func (w *chainWorker) plan(ctx context.Context, a ChainArgs) ([]cutover.Entry, error) {
	_, err := w.cfg.Planner.DryRunChain(ctx, drain.ChainRequest{ID: a.ChainID, Instances: a.Instances, Spares: a.Spares,
		Threshold: a.Threshold, NewID: a.newID})
	if errors.Is(err, drain.ErrInvalid) || errors.Is(err, drain.ErrUnplaced) {
		return nil, river.JobCancel(fmt.Errorf("fleetjobs: chain %s cannot be planned, so nothing was moved: %w", a.ChainID, err))
	}
	if err != nil {
		return nil, fmt.Errorf("fleetjobs: plan chain %s: %w", a.ChainID, err)
	}
	detail, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	_, err = w.cfg.Journal.Append(ctx, cutover.Entry{Move: a.ChainID, Kind: cutover.KindChain, Seq: 1,
		Step: cutover.StepPlan, Status: cutover.StatusFinished, Detail: detail})
	if err != nil && !errors.Is(err, cutover.ErrMoveIDUsed) { // used: another round journaled first
		return nil, fmt.Errorf("fleetjobs: journal chain %s: %w", a.ChainID, err)
	}
	return w.cfg.Journal.Entries(ctx, a.ChainID)
}

// takeOverConversion gives the stage's conversion to a new job (the next
// generation) when the worker running its job died (see workerDied):
// the conversion may have died in its window, with every tenant of the
// instance paused, so it must not wait for River to rescue the job
// after MoveTimeout.
func (w *chainWorker) takeOverConversion(ctx context.Context, client *river.Client[pgx.Tx], chainJob, child *rivertype.JobRow) error {
	var a ConvertArgs
	if err := json.Unmarshal(child.EncodedArgs, &a); err != nil {
		return river.JobCancel(fmt.Errorf("fleetjobs: the conversion job %d has unreadable arguments: %w", child.ID, err))
	}
	jm, err := readJournal(ctx, w.cfg.Journal, a.ConvertID)
	if err != nil {
		return err
	}
	if died, err := workerDied(ctx, &w.cfg, a.ConvertID, child, jm); err != nil || !died {
		return err
	}
	w.cfg.Logger.InfoContext(ctx, "fleetjobs: taking over a conversion whose worker died", "conversion", a.ConvertID,
		"job", child.ID, "journal", jm.state.String(), "generation", a.Generation+1)
	a.Generation++
	meta := childMeta{Parent: metaOf(child).Parent, ParentJob: chainJob.ID}
	if _, err := Insert(ctx, client, a, &river.InsertOpts{Metadata: meta.encode()}); err != nil {
		return fmt.Errorf("fleetjobs: take over conversion %s: %w", a.ConvertID, err)
	}
	return nil
}

// children are the chain's stage jobs, by their IDs: of a conversion
// taken over, its latest generation's.
func (w *chainWorker) children(ctx context.Context, client *river.Client[pgx.Tx], chainID string) (map[string]*rivertype.JobRow, error) {
	res, err := client.JobList(ctx, river.NewJobListParams().Kinds(KindDrain, KindConvert, KindRefill).
		Metadata(string(childMeta{Parent: chainID}.encode())).First(10_000))
	if err != nil {
		return nil, fmt.Errorf("fleetjobs: list the stages of chain %s: %w", chainID, err)
	}
	out := map[string]*rivertype.JobRow{}
	for _, j := range res.Jobs {
		var ids struct {
			Drain   string `json:"drain_id"`
			Convert string `json:"convert_id"`
			Refill  string `json:"refill_id"`
		}
		if json.Unmarshal(j.EncodedArgs, &ids) == nil {
			id := cmp.Or(ids.Drain, ids.Convert, ids.Refill)
			if held := out[id]; held == nil || held.ID < j.ID {
				out[id] = j
			}
		}
	}
	return out, nil
}

// start enqueues a stage's job: a drain onto the spares and the instances
// converted before this one, a conversion, or a refill from the spares up
// to the converted instance's limits.
func (w *chainWorker) start(ctx context.Context, client *river.Client[pgx.Tx], job *rivertype.JobRow, a ChainArgs, i int, step cutover.Step, childID string) (*rivertype.JobRow, error) {
	opts := &river.InsertOpts{Metadata: childMeta{Parent: a.ChainID, ParentJob: job.ID}.encode()}
	inst := a.Instances[i]
	var res *rivertype.JobInsertResult
	var err error
	switch step {
	case stepChainDrain:
		onto := slices.Clone(a.Spares)
		for _, done := range a.Instances[:i] {
			onto = append(onto, a.newID(done))
		}
		res, err = Insert(ctx, client, DrainArgs{DrainID: childID, Instance: inst, Threshold: a.Threshold, Onto: onto, InFlight: a.InFlight}, opts)
	case stepChainConvert:
		res, err = Insert(ctx, client, ConvertArgs{ConvertID: childID, Instance: inst, NewInstance: a.newID(inst)}, opts)
	case stepChainRefill:
		res, err = Insert(ctx, client, RefillArgs{RefillID: childID, Instance: a.newID(inst), Sources: a.Spares, InFlight: a.InFlight}, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("fleetjobs: chain %s: start %s: %w", a.ChainID, childID, err)
	}
	return res.Job, nil
}

func (w *chainWorker) journal(ctx context.Context, chainID string, step cutover.Step, status cutover.Status, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	if _, err := w.cfg.Journal.Append(ctx, cutover.Entry{Move: chainID, Kind: cutover.KindChain, Step: step, Status: status, Detail: b}); err != nil {
		return fmt.Errorf("fleetjobs: journal chain %s: %w", chainID, err)
	}
	return nil
}
