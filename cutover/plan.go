package cutover

import (
	"encoding/json"
	"fmt"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// kindConvert marks a conversion's plan, kindRevert a revert's; a tenant
// move's has no kind.
const (
	kindConvert = "convert"
	kindRevert  = "revert"
)

// plan is a move or a conversion as journaled in StepPlan: with the
// catalog, all that Resume needs. It holds no secrets.
type plan struct {
	// Kind is kindConvert for a conversion, empty for a tenant move.
	Kind string `json:"kind,omitempty"`
	Move string `json:"move"`

	// A tenant move: one tenant, from Source to Target.
	Tenant     string              `json:"tenant,omitempty"`
	Database   string              `json:"database,omitempty"`
	Source     string              `json:"source,omitempty"`
	Target     string              `json:"target,omitempty"`
	Verify     replica.VerifyLevel `json:"verify"`
	KeepStream bool                `json:"keep_stream_on_rollback"`
	// Reverse: the move makes a reverse stream (see revert.go).
	Reverse bool `json:"reverse,omitempty"`
	// TargetDatabase, if set, is the database the stream copies into on
	// Target instead of Database: a rehearsal's scratch database.
	TargetDatabase string `json:"target_database,omitempty"`

	// A revert: Reverts is the move it takes back (Source and Target
	// are that move's the other way round), Connect who may connect to
	// the database on its Target (the move's source) once it serves.
	Reverts string   `json:"reverts,omitempty"`
	Connect []string `json:"connect,omitempty"`

	// A conversion: every tenant of Instance, onto NewInstance.
	Instance    string         `json:"instance,omitempty"`
	NewInstance string         `json:"new_instance,omitempty"`
	Limits      fleet.Limits   `json:"limits,omitzero"`
	Tenants     []fleet.Tenant `json:"tenants,omitempty"`
}

func (p plan) convert() bool { return p.Kind == kindConvert }

func (p plan) revert() bool { return p.Kind == kindRevert }

// source and destination are the IDs of the instances the tenants leave
// and join.
func (p plan) source() string {
	if p.convert() {
		return p.Instance
	}
	return p.Source
}

func (p plan) destination() string {
	if p.convert() {
		return p.NewInstance
	}
	return p.Target
}

// subject is what events and logs name: the tenant, or the instance.
func (p plan) subject() string {
	if p.convert() {
		return p.Instance
	}
	return p.Tenant
}

// locks are what the run holds: a move, its tenant and a share of its
// source and target, which no conversion may take meanwhile; a
// conversion, its instance and the new one for itself, and every tenant
// of the instance.
//
// A new move also takes a slot out of its source and one into its target
// when the Mover limits them (perSource, perTarget > 0); a Resume passes
// 0, 0: it finishes a move that held slots, and must not wait for new ones.
func (p plan) locks(perSource, perTarget int) []Lock {
	if !p.convert() {
		locks := []Lock{tenantLock(p.Tenant), instanceLock(p.Source, true), instanceLock(p.Target, true)}
		if perSource > 0 {
			locks = append(locks, movesOutLock(p.Source, perSource))
		}
		if perTarget > 0 {
			locks = append(locks, movesInLock(p.Target, perTarget))
		}
		return locks
	}
	locks := []Lock{instanceLock(p.Instance, false), instanceLock(p.NewInstance, false)}
	for _, t := range p.Tenants {
		locks = append(locks, tenantLock(t.ID))
	}
	return locks
}

// holder names the run in lock conflicts.
func (p plan) holder() string {
	switch {
	case p.convert():
		return fmt.Sprintf("conversion %q", p.Move)
	case p.revert():
		return fmt.Sprintf("revert %q", p.Move)
	case p.rehearsal():
		return fmt.Sprintf("rehearsal %q", p.Move)
	}
	return fmt.Sprintf("move %q", p.Move)
}

// journaledPlan reads the plan of a move or a conversion from its
// journal; found is false when the plan was never recorded.
func journaledPlan(id string, entries []Entry) (p plan, found bool, err error) {
	for _, e := range entries {
		if e.Step == StepPlan && e.Status == StatusFinished {
			if err := json.Unmarshal(e.Detail, &p); err != nil {
				return plan{}, false, fmt.Errorf("cutover: %q: the journaled plan is unreadable: %w", id, err)
			}
			found = true
		}
	}
	return p, found && p.Move != "", nil
}

// Planned is what a journal's plan says a move or a conversion moves: for
// callers that decide by a journal, such as a job queue's worker that must
// not take a move ID reused for another tenant for the move it asks for.
type Planned struct {
	// Conversion is true for a conversion's plan.
	Conversion bool
	// A move's tenant and instances.
	Tenant, Source, Target string
	// A conversion's instance and the instance it becomes.
	Instance, NewInstance string
	// Reverts is, for a revert (Mover.Revert), the move it takes back;
	// Source and Target are then the revert's: that move's target and
	// source.
	Reverts string
	// Rehearsal is true for a rehearsal's plan (Mover.Rehearse): it
	// moves nothing.
	Rehearsal bool
}

// PlannedIn reads the plan of a move or a conversion from its journal's
// entries (Journal.Entries); found is false when no plan was recorded.
func PlannedIn(moveID string, entries []Entry) (_ Planned, found bool, _ error) {
	p, found, err := journaledPlan(moveID, entries)
	if err != nil || !found {
		return Planned{}, false, err
	}
	return Planned{Conversion: p.convert(), Tenant: p.Tenant, Source: p.Source, Target: p.Target,
		Instance: p.Instance, NewInstance: p.NewInstance, Reverts: p.Reverts, Rehearsal: p.rehearsal()}, true, nil
}
