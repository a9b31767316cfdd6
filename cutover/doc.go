// Package cutover moves tenant databases between instances while their
// applications keep serving, with a measured write-unavailability window,
// a journal that survives crashes, and rollback: one tenant (Move), or
// every tenant of an instance onto a converted replica of it (Convert).
//
// Both are one run over a set of tenants (a Move is a set of one), with
// one step table that DryRun and DryRunConvert list: plan, preflight, the
// copy (a stream of the tenant database, or a replica of the instance),
// catch-up, then the window, under Config.WindowBudget: pause the routes,
// quiesce (in-flight work finishes), fence, barrier, wait for the destination, then what the copy
// needs (sequences and a snapshot of the target; or promote and register
// the new instance), and the switch of every route; after it, the
// catalog, the verification of the target's snapshot against the frozen
// source, and the end of the copy. The window's cost does not grow with
// the tenants or their data: the admin sessions it uses are opened before
// it, each step does its work over the whole set at once (one quiesce
// query, one fence round, one batch of routes), and the journal records
// in it only what Resume decides by.
//
// Fences hold writes to the source during the window: DatabaseFence is
// authoritative (no session can commit to the source database once Hold
// returns); cooperative fences hold work before it reaches the database.
// A fence with the BatchFence capability fences a set at once.
//
// What a Mover is given need implement only the required interfaces
// (replica.Provider, flags.Publisher, RouteReader, Journal, Fence); the
// optional capabilities it finds by type assertion (Readier, FenceSparer,
// TargetSnapshotter, StreamAborter, StreamFinisher, ConverterPreflighter,
// PublishedReader, BatchPublishedReader, BatchRouteReader, Locker,
// BatchFence, ReverseMaker, ReverseProvider) are exported interfaces, each saying what the Mover does
// without it.
//
// After the switch a move keeps a way back: a reverse stream carries the
// target's writes to the source copy, which is fenced by privileges
// instead (see revert.go for the design), and Revert takes the tenant
// back through the same window the other way, until Retire ends it all.
// A conversion makes no reverse stream and cannot be reverted.
//
// The Journal records the steps (StepPlan to StepDone or StepRolledBack),
// in the control database (PostgresJournal) or in memory (MemoryJournal).
// Both list their newest journals (RecentLister), for an operator's
// status, at a cost that grows with what they return, and keep what each
// run measured (MeasurementStore).
//
// Estimates come from measured runs, not constants. Every move,
// conversion and rehearsal that runs start to end records a Measurement:
// the shape of what it moved (bytes, tables, indexes, write rate), each
// step's time, and the stream's copy, index and catch-up phases. A
// RateModel fits each step over an instance pair's newest runs (else the
// fleet's, else this library's defaults) as a fixed part plus a part
// that grows with what drives it, and estimates a run step by step with
// a range and the samples it rests on (Estimate.Basis). DryRun and
// DryRunConvert report it, each run's Report carries it, and its events'
// ETA revises it as the work runs. Rehearse measures a tenant's move
// without moving it: the whole move into a scratch database on the
// target, with a window that fences and switches nothing, then
// everything it made dropped. Rehearse a sample of tenants before a
// fleet-wide chain.
package cutover
