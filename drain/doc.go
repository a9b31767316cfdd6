// Package drain plans moving tenants off an instance (PlanDrain) and onto
// one (PlanRefill), the two halves of the daisy chain in which every
// instance of a fleet is drained below a threshold, converted, and
// refilled.
//
// The planners are pure: they read a Snapshot of the fleet (instances
// with their Limits, and each tenant's measured usage) and return a Plan
// without touching a database. Measure builds a Snapshot from a live
// fleet through its catalog, one connection per instance (see
// fleet.MeasureInstance), counting every database on disk against the
// Limits, fenced copies awaiting Retire included; a Runner measures only
// the instances each plan involves. A Plan lists the moves in order and
// the usage of every affected instance before and after; its String is
// the dry-run report. A Runner's plans also carry estimates: each move's
// from the Mover's rate model of its instance pair (cutover.Mover.RateModel:
// the pair's measured moves and rehearsals, else the fleet's, else the
// library's defaults), the plan's as its moves run Concurrency at a time,
// each with a range, and the Basis they rest on.
//
// Planning keeps its own running totals, so each placement sees the ones
// planned before it; the Snapshot itself is never modified.
package drain
