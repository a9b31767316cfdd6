// Package fleetjobs runs daisychain's operations as River jobs
// (github.com/riverqueue/river) in the control database, so that any number
// of worker processes share a fleet's moves and a move outlives the process
// that started it.
//
// # The host's client, our workers
//
// The host keeps its own river.Client: its queues and how many jobs each
// process runs at once, its logger, its retry policy. Register adds a
// worker for each of daisychain's job kinds (KindMove, KindRetire,
// KindConvert, KindTakeover, and KindDrain, KindRefill and KindChain when
// Config.Planner is set) to the host's river.Workers, over a Config that
// gives them the host's cutover.Mover and the journal it writes to.
// Insert and InsertTx enqueue any of them through the host's client.
// Migrate creates River's tables in the control database beside the
// catalog and the journal.
//
// Job arguments carry IDs only (move, tenant, target instance): a worker
// reaches databases through its own Mover, so no connection string or
// password is ever stored in a job.
//
// # One move ID, one move
//
// A move job is unique by its move ID (River's UniqueOpts on the
// river:"unique" field): enqueueing it again while it waits, runs or is
// kept completed inserts nothing; enqueueing the ID with another tenant or
// target is refused with ErrMoveIDConflict.
//
// A job does what the journal says is left of its move, whichever attempt
// it is and wherever it runs: nothing if the move is done (Output says
// DecisionAlreadyDone), Resume if it is open (a worker died in it, or an
// attempt failed after the switch), Move if the journal has no entry of
// its ID. So a job River rescues from a dead worker continues on another:
// Resume completes a move whose switch went through and rolls back any
// other. A move that ends rolled back (by its window budget, by preflight,
// or by Resume) cancels its job, which is not retried: a move ID names one
// attempt at moving the tenant, so try again with a new ID.
//
// # Drains and refills: one job, then a job per move
//
// A drain job plans once (Config.Planner, a *drain.Runner: it measures
// the instances involved), journals the plan as the first entry of a
// journal of kind cutover.KindDrain, and enqueues one move job per tenant,
// DrainArgs.InFlight at a time, each named DrainID/tenant. Between rounds
// it snoozes, holding no worker; a move job wakes it as it ends. It ends
// once every move has settled: completed if each moved its tenant,
// cancelled with ErrMovesFailed naming those that did not; its journal's
// last entry (and the job's output, FanOutOutput) lists both. A drain job
// rescued, retried or run twice reads its plan back, and its move jobs are
// unique by move ID: nothing is planned or moved twice. A round reads the
// drain's journal and the move jobs not finalized (at most InFlight, and
// the takeovers), so a drain of N tenants reads O(N) job rows over its N
// rounds; its last round reads them all once, for the outcome.
//
// Limits across processes are the Movers': cutover.Config.MovesPerSource
// and MovesPerTarget bound the moves out of one instance and into one,
// wherever they run, by counting locks in the control database. A move
// job over a limit (cutover.ErrMoveLimit) snoozes for BusySnooze, like one
// whose tenant is busy, after waiting the Mover's LockWait for a slot
// while it holds one of its process's River slots: give workers' Movers a
// short LockWait (a second). Set the same limits in every worker.
//
// A move whose worker died is taken over by its drain at its next round,
// not after MoveTimeout: the drain sees its job running and either its
// journal open with its locks free (cutover.Mover.Abandoned), or no entry
// of it after Config.TakeoverAfter; it enqueues a takeover job
// (KindTakeover), which does what the move job would have done from the
// journal (Resume, and Retire unless KeepSources). River's later rescue of
// the dead worker's job finds the move over and changes nothing. So a
// tenant whose mover died inside its window is paused for about a
// DrainPoll and a Resume, not for MoveTimeout; for up to
// cutover.LockOrphanTimeout more if the worker's host was lost rather
// than its process killed (its locks go when the control database sees
// its lock session is gone). A takeover whose own worker dies is taken
// over the same way. A wrong guess (a worker
// alive but slow) costs a second job, which the tenant's lock and the
// journal keep from doing anything twice.
//
// # Daisy chains: a stage at a time
//
// A chain job (ChainArgs) checks that the chain can be planned
// (drain.Runner.DryRunChain), journals it in a journal of kind
// cutover.KindChain, and runs it a stage at a time: for each instance, a
// drain job onto the spares and the instances converted so far
// (DrainArgs.Onto), a conversion job, a refill job from the spares. It
// starts a stage's job once the one before has completed, and snoozes
// meanwhile; the stage's job wakes it as it ends. A stage that fails
// cancels the chain, naming it; enqueueing the chain again goes on from
// that stage, with a new attempt of its job. A chain's journal is never
// taken for a move's: Mover.Resume refuses it, and Open lists it under
// KindChain only. A conversion whose worker died is taken over at the
// chain's next round, as a drain takes over a move: a new job of the next
// ConvertArgs.Generation resumes it (rolls it back, if its replica died
// with the worker), not River's rescue after MoveTimeout with every
// tenant of the instance paused.
//
// River deletes completed jobs after its CompletedJobRetentionPeriod (24
// hours by default): keep it longer than your longest drain, or the moves
// done before are enqueued again by its last round (they find themselves
// done, and change nothing).
//
// # Locks, not River, keep movers apart
//
// River's rescuer cannot tell a dead worker from a slow one: a job running
// longer than RescueStuckJobsAfter is made available again even if its
// worker is alive. The per-tenant advisory lock that every Move and Resume
// holds in the control database (cutover's, on a session of its own) is
// what keeps two workers off one tenant: a job that finds the tenant held
// (cutover.ErrMoveInProgress), or an instance it needs being converted
// (cutover.ErrInstanceBusy), snoozes for Config.BusySnooze without using
// up an attempt, and tries again. A dead worker's lock goes with its
// session: at once when its process is killed, within about 25 s when its
// host is lost.
//
// # Timeouts for long copies
//
// A move lasts as long as its copy: hours for a large tenant. River bounds
// a job by its worker's timeout, and rescues a job whose worker died only
// once it has been running for longer than both that timeout and the
// client's RescueStuckJobsAfter (then within the rescuer's 30 s round):
//
//   - JobTimeout (the client's, default one minute) does not apply to
//     daisychain's kinds: their workers set their own, Config.MoveTimeout
//     (default two hours) and Config.RetireTimeout. MoveTimeout must
//     exceed the longest move: cutover.Config.CatchUpTimeout (the copy and
//     catch-up, default one hour), the WindowBudget, and the verification
//     and the end of the stream of the largest tenant
//     (cutover.Mover.DryRun estimates them). A move that outlives it is
//     cancelled: rolled back if before its switch. It cannot be -1 (no
//     timeout): River never rescues such a job.
//   - RescueStuckJobsAfter (the client's, default one hour) need not
//     exceed MoveTimeout: River does not rescue a move job before
//     MoveTimeout anyway. Leave it at or below MoveTimeout, so that
//     MoveTimeout alone says when a dead worker's move is taken up again.
//
// MoveTimeout is therefore also how long a move whose worker died waits to
// be resumed, its tenant paused and fenced if the worker died inside the
// window: size it to your largest tenant, not larger. A rescue of a job
// whose worker is alive (still winding down a move River cancelled) is
// safe: that mover holds the tenant's lock, so the rescued attempt snoozes
// until it lets go, then finds the move over. Each rescue costs an attempt
// of MaxAttempts.
//
// Stop the client with Client.Stop, which lets running moves finish;
// StopAndCancel cancels them, rolling back those before their switch.
package fleetjobs
