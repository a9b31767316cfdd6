package cutover

// Step names one step of a move. Every step is journaled before and after
// it runs, and each is idempotent, so Resume can run it again.
type Step string

// The steps of a tenant cutover, in order, then the steps that end a move.
const (
	StepPlan          Step = "plan"           // the move as asked: tenant, source, target, options
	StepPreflight     Step = "preflight"      // read-only checks; nothing changed
	StepStream        Step = "stream"         // start (or resume) the replica stream
	StepCatchUp       Step = "catch_up"       // wait until lag is small enough for a short window
	StepPause         Step = "pause"          // window opens: routes hold new work
	StepQuiesce       Step = "quiesce"        // in-flight work finishes (bounded grace)
	StepFence         Step = "fence"          // no write can commit on the source any more
	StepBarrier       Step = "barrier"        // the source's position after the fence
	StepWaitTarget    Step = "wait_target"    // the target has applied the barrier
	StepSyncSequences Step = "sync_sequences" // sequences copied to the target
	StepSnapshot      Step = "snapshot"       // schema checked; the target's state held for verification
	StepSwitch        Step = "switch"         // route published to the target: the point of no return
	StepCatalog       Step = "catalog"        // the catalog records the tenant on the target
	StepVerify        Step = "verify"         // the target's snapshot compared with the frozen source
	StepFinishStream  Step = "finish_stream"  // replication objects dropped; target independent
	StepRollback      Step = "rollback"       // undo: release fences, route back to the source
	StepDone          Step = "done"           // terminal: the tenant is on the target
	StepRolledBack    Step = "rolled_back"    // terminal: the tenant is on the source
	StepRetire        Step = "retire"         // after the rollback period: the source copy dropped

	// The reverse stream (see revert.go): made by a move, ended by
	// Retire or by the retained-WAL guard.
	StepReversePrepare Step = "reverse_prepare" // before the window: the reverse's publication and slot; the source's CONNECT grantees
	StepReverseStart   Step = "reverse_start"   // in the window, before the switch: where the reverse starts (a read, journaled with the switch)
	StepReverse        Step = "reverse"         // after the forward stream ended: the source fenced by privileges, the reverse subscribed
	StepReverseDropped Step = "reverse_dropped" // terminal after done: the guard dropped the reverse stream; no Revert
	// A Revert runs as a journal of its own (kind revert in its plan,
	// the move's steps the other way, open_source before its switch);
	// the move's journal notes it.
	StepRevert     Step = "revert"      // the move's journal: a Revert of it runs (its ID in the detail)
	StepOpenSource Step = "open_source" // a Revert's window: the source's CONNECT grants given back
	StepReverted   Step = "reverted"    // terminal in the move's journal: the tenant is back on the source
)

// terminal reports whether a move whose journal ends with s is over.
func (s Step) terminal() bool {
	return s == StepDone || s == StepRolledBack || s == StepRetire || s == StepReverseDropped || s == StepReverted ||
		s == StepRehearsed
}
