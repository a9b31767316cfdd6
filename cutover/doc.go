// Package cutover moves one tenant database from its instance to another
// while its application keeps serving, with a measured write-unavailability
// window, a journal that survives crashes, and rollback.
//
// Fences hold writes to the source during the window: DatabaseFence is
// authoritative (no session can commit to the source database once Hold
// returns); cooperative fences hold work before it reaches the database.
//
// The Journal records every step before and after it runs (StepPlan to
// StepDone or StepRolledBack), in the control database (PostgresJournal)
// or in memory (MemoryJournal).
package cutover
