// Command fleet runs a drain as River jobs on several worker processes,
// kills one of them with SIGKILL in the middle of a move, and runs the
// same drain on one worker for comparison, while an application writes
// through the Router:
//
//	go run ./examples/fleet
//	go run ./examples/fleet -json -tenants 60
//
// It starts five throwaway localpg instances (control, pg-a, pg-b, pg-c,
// pg-d) and -tenants tenants on each of pg-a and pg-b. Run 1 drains pg-a
// onto pg-c and pg-d with three workers, and kills the first worker seen
// with every move it runs switched and not yet over (no replacement is
// started): the drain hands that move to another worker (a takeover job),
// which resumes it from the journal. Run 2 drains pg-b the same
// way with one worker. Then it checks every write the application was told
// had committed is where the tenant's route points now.
//
// Workers are this program re-executed with -worker: each wires the
// library from connection strings (package examples/internal/host), as a
// host's worker process would, registers fleetjobs into its own
// river.Workers and runs a river.Client. The connection strings reach it
// by environment, never by arguments, and are never printed.
//
// It exits 1 if the application saw an error, an acknowledged write is
// missing, or a move failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/examples/internal/host"
	"github.com/daisychain-db/daisychain/fleetjobs"
)

// summary is the -json output.
type summary struct {
	// Run 1: three workers, one killed.
	TenantsMoved  int   `json:"tenants_moved"`
	Workers       int   `json:"workers"`
	WorkersKilled int   `json:"workers_killed"`
	Killed        *kill `json:"killed,omitempty"`
	// MovesResumed are the moves the drain took over from a dead worker
	// (FanOutOutput.TakenOver).
	MovesResumed     int     `json:"moves_resumed"`
	Seconds          float64 `json:"seconds"`
	TenantsPerMinute float64 `json:"tenants_per_minute"`
	// Run 2: one worker.
	TenantsMovedOneWorker     int     `json:"tenants_moved_one_worker"`
	SecondsOneWorker          float64 `json:"seconds_one_worker"`
	TenantsPerMinuteOneWorker float64 `json:"tenants_per_minute_one_worker"`
	// Both runs.
	MovesFailed        int    `json:"moves_failed"`
	AppErrors          int64  `json:"app_errors"`
	FirstAppError      string `json:"first_app_error,omitempty"`
	AcknowledgedWrites int64  `json:"acknowledged_writes"`
	MissingWrites      int64  `json:"missing_writes"`
	MovesPerSource     int    `json:"moves_per_source"`
	MovesPerTarget     int    `json:"moves_per_target"`
}

// options are the command line's.
type options struct {
	tenants int // per source instance
	asJSON  bool
	limits  limits
	worker  string // set in a worker process: its River client ID
	verbose bool   // workers log their jobs and moves to stderr
}

const (
	workersRun1    = 3
	soloWorker     = "worker-4" // run 2's, named apart from run 1's
	inFlight       = 6
	sampledWriters = 8 // tenants of each source the application writes to
)

func main() {
	log.SetFlags(0)
	os.Exit(cli(os.Args[1:], os.Stdout))
}

// cli runs the parent or, with -worker, a worker; it returns the exit
// status.
func cli(args []string, out io.Writer) int {
	var o options
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.IntVar(&o.tenants, "tenants", 60, "tenants on each of pg-a and pg-b")
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object as the last line")
	fs.IntVar(&o.limits.movesPerSource, "moves-per-source", 2, "moves out of one instance at once, across all workers")
	fs.IntVar(&o.limits.movesPerTarget, "moves-per-target", 2, "moves into one instance at once, across all workers")
	fs.DurationVar(&o.limits.quietSpell, "quiet-spell", 0, "the window's quiet spell (cutover.Config.QuietSpell; 0: the library's): raise it on a starved machine")
	fs.BoolVar(&o.verbose, "v", false, "workers log their jobs' decisions and the moves' steps to stderr")
	fs.StringVar(&o.worker, "worker", "", "run as the worker process with this ID (connection strings from the environment)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.tenants < sampledWriters {
		log.Printf("fleet: -tenants %d: give at least %d (the application writes to %d tenants of each source)", o.tenants, sampledWriters, sampledWriters)
		return 2
	}
	if o.limits.quietSpell < 0 {
		log.Printf("fleet: -quiet-spell %s: give 0 (the library's) or more", o.limits.quietSpell)
		return 2
	}
	if o.limits.movesPerSource < 0 || o.limits.movesPerTarget < 0 {
		log.Printf("fleet: -moves-per-source %d, -moves-per-target %d: give 0 (no limit) or more", o.limits.movesPerSource, o.limits.movesPerTarget)
		return 2
	}
	if o.worker != "" {
		if err := runWorker(context.Background(), o.worker, o); err != nil {
			log.Printf("fleet: %v", err)
			return 1
		}
		return 0
	}
	s, err := run(context.Background(), out, o)
	if err != nil {
		log.Printf("fleet: %v", err)
		return 1
	}
	if s.AppErrors != 0 || s.MissingWrites != 0 || s.MovesFailed != 0 {
		return 1
	}
	return 0
}

// run is the parent: the fleet, the application, both runs, the checks.
func run(ctx context.Context, out io.Writer, o options) (s summary, err error) {
	say := func(format string, args ...any) {
		if !o.asJSON {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	s.MovesPerSource, s.MovesPerTarget = o.limits.movesPerSource, o.limits.movesPerTarget
	exe, err := os.Executable()
	if err != nil {
		return s, err
	}
	say("starting local PostgreSQL instances: control, pg-a, pg-b, pg-c, pg-d ...")
	local, err := host.StartLocal(ctx, "pg-a", "pg-b", "pg-c", "pg-d")
	if err != nil {
		return s, err
	}
	defer local.Close()
	h, err := host.Open(ctx, hostConfig(local.Control, local.Instances, o.tenants, o.limits))
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, h.Close()) }()

	say("creating %d tenants on pg-a and %d on pg-b ...", o.tenants, o.tenants)
	sources := map[string][]string{}
	for _, inst := range []string{"pg-a", "pg-b"} {
		if sources[inst], err = addTenants(ctx, local, h, inst, o.tenants); err != nil {
			return s, err
		}
	}

	pool, err := pgxpool.New(ctx, local.Control)
	if err != nil {
		return s, err
	}
	defer pool.Close()
	if err := fleetjobs.Migrate(ctx, pool, nil); err != nil {
		return s, err
	}
	// This client only inserts and reads jobs: it runs none.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return s, err
	}

	// The application writes to a sample of each source's tenants for the
	// whole run, through the Router.
	var sampled []string
	for _, ids := range [][]string{sources["pg-a"], sources["pg-b"]} {
		for i := range sampledWriters {
			sampled = append(sampled, ids[i*len(ids)/sampledWriters])
		}
	}
	writers := make([]*host.Writers, len(sampled))
	for i, id := range sampled {
		writers[i] = host.StartWriters(h.Router, id, 1, 20*time.Millisecond)
	}
	defer func() {
		for _, w := range writers {
			w.Stop()
		}
	}()
	say("the application writes to %d tenants through the Router", len(sampled))

	sp := spawner{executable: exe, control: local.Control, instances: local.Instances, opts: o}
	say("run 1: draining pg-a onto pg-c and pg-d with %d workers (MaxWorkers %d each, at most %d moves out of one instance and %d into one); the first worker seen with every move it runs switched is killed",
		workersRun1, workerConcurrency, o.limits.movesPerSource, o.limits.movesPerTarget)
	r1, err := runDrain(ctx, client, h.Journal, sp, workersRun1, fleetjobs.DrainArgs{
		DrainID: "drain-pg-a", Instance: "pg-a", Onto: []string{"pg-c", "pg-d"}})
	if err != nil {
		return s, err
	}
	s.Workers, s.Killed = workersRun1, r1.killed
	if r1.killed != nil {
		s.WorkersKilled = 1
		say("  killed %s (SIGKILL) in move %s, at step %s; the move is done after the drain: %t",
			r1.killed.Worker, r1.killed.Move, r1.killed.Step, r1.killed.Done)
	}
	s.TenantsMoved, s.MovesResumed, s.MovesFailed = len(r1.out.Moved), len(r1.out.TakenOver), len(r1.out.Failed)
	s.Seconds, s.TenantsPerMinute = r1.seconds, perMinute(len(r1.out.Moved), r1.seconds)
	say("  %d of %d tenants moved in %.1f s (%.1f a minute), %d failed, %d taken over from a dead worker", len(r1.out.Moved), r1.out.Planned,
		r1.seconds, s.TenantsPerMinute, len(r1.out.Failed), len(r1.out.TakenOver))

	say("run 2: draining pg-b onto pg-c and pg-d with one worker")
	r2, err := runDrain(ctx, client, h.Journal, sp, 1, fleetjobs.DrainArgs{
		DrainID: "drain-pg-b", Instance: "pg-b", Onto: []string{"pg-c", "pg-d"}})
	if err != nil {
		return s, err
	}
	s.TenantsMovedOneWorker, s.MovesFailed = len(r2.out.Moved), s.MovesFailed+len(r2.out.Failed)
	s.SecondsOneWorker, s.TenantsPerMinuteOneWorker = r2.seconds, perMinute(len(r2.out.Moved), r2.seconds)
	say("  %d of %d tenants moved in %.1f s (%.1f a minute), %d failed", len(r2.out.Moved), r2.out.Planned,
		r2.seconds, s.TenantsPerMinuteOneWorker, len(r2.out.Failed))

	for i, w := range writers {
		seen := w.Stop()
		s.AppErrors += seen.Errors
		s.AcknowledgedWrites += seen.Acknowledged()
		if seen.FirstErr != nil {
			// On stderr in either mode: what a user needs to look into.
			log.Printf("fleet: application error: %v", seen.FirstErr)
			if s.FirstAppError == "" {
				s.FirstAppError = seen.FirstErr.Error()
			}
		}
		missing, err := seen.Missing(ctx, h.Catalog, sampled[i])
		if err != nil {
			return s, err
		}
		s.MissingWrites += missing
	}
	say("application: %d acknowledged writes to %d tenants, %d errors, %d missing where their routes point now",
		s.AcknowledgedWrites, len(sampled), s.AppErrors, s.MissingWrites)
	if s.SecondsOneWorker > 0 && s.Seconds > 0 {
		say("%d workers (one killed) moved %.2f× the tenants a minute of one worker", workersRun1, s.TenantsPerMinute/s.TenantsPerMinuteOneWorker)
	}
	if o.asJSON {
		return s, json.NewEncoder(out).Encode(s)
	}
	return s, nil
}

// drainRun is one run's outcome.
type drainRun struct {
	out     fleetjobs.FanOutOutput
	seconds float64 // from the drain's insert to its job's end
	killed  *kill
}

// runDrain starts n worker processes, enqueues the drain (every tenant:
// a threshold of one relation file), kills one of them in a move if it
// started more than one, waits for the drain job to end, and stops the
// workers.
func runDrain(ctx context.Context, client *river.Client[pgx.Tx], journal cutover.Journal, sp spawner, n int, args fleetjobs.DrainArgs) (r drainRun, err error) {
	var procs []*process
	defer func() {
		for _, p := range procs {
			err = errors.Join(err, p.stop(time.Minute))
		}
	}()
	for i := range n {
		id := fmt.Sprintf("worker-%d", i+1)
		if n == 1 {
			id = soloWorker
		}
		p, err := sp.start(id)
		if err != nil {
			return r, err
		}
		procs = append(procs, p)
	}
	args.Threshold, args.InFlight = drain.Threshold{MaxFiles: 1}, inFlight
	start := time.Now()
	res, err := fleetjobs.Insert(ctx, client, args, nil)
	if err != nil {
		return r, err
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	type killResult struct {
		k   *kill
		err error
	}
	killed := make(chan killResult, 1)
	go func() {
		if len(procs) > 1 {
			k, err := killInMove(watchCtx, client, journal, procs)
			killed <- killResult{k, err}
			return
		}
		killed <- killResult{}
	}()

	job, err := waitFinalized(ctx, client, res.Job.ID)
	r.seconds = time.Since(start).Seconds()
	stopWatch()
	kr := <-killed
	r.killed = kr.k
	if err = errors.Join(err, kr.err); err != nil {
		return r, err
	}
	// The drain's journal ends with its outcome, whether its job
	// completed or was cancelled because moves failed.
	entries, err := journal.Entries(ctx, args.DrainID)
	if err != nil {
		return r, err
	}
	if r.killed != nil {
		moved, err := journal.Entries(ctx, r.killed.Move)
		if err != nil {
			return r, err
		}
		r.killed.Done = slices.ContainsFunc(moved, func(e cutover.Entry) bool {
			return e.Step == cutover.StepDone && e.Status == cutover.StatusFinished
		})
	}
	if last := entries[len(entries)-1]; !last.Terminal() {
		return r, fmt.Errorf("drain %s ended %s with its journal open: %v", args.DrainID, job.State, job.Errors)
	} else if err := json.Unmarshal(last.Detail, &r.out); err != nil {
		return r, fmt.Errorf("the outcome of %s: %w", args.DrainID, err)
	}
	return r, nil
}

// waitFinalized waits for the job to end.
func waitFinalized(ctx context.Context, client *river.Client[pgx.Tx], id int64) (*rivertype.JobRow, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		job, err := client.JobGet(ctx, id)
		if err != nil {
			return nil, err
		}
		if job.FinalizedAt != nil {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

func perMinute(n int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds * 60
}
