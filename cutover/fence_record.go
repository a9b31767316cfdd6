package cutover

import (
	"encoding/json"
	"fmt"

	"github.com/daisychain-db/daisychain/internal/connstring"
)

// fenceRecord is what the journal keeps of a fence a run puts up, so that
// Resume releases that fence, and not whatever the resuming Mover is
// configured with (a PgBouncer PAUSE of a crashed run must not stay for
// ever). It holds no secret.
type fenceRecord struct {
	// Kind is the fence's Name(); "database" and "pgbouncer" are the
	// built-in fences, rebuilt from the record alone.
	Kind string `json:"kind"`
	// Admin is a PgBouncerFence's admin console, without its password.
	Admin string `json:"admin,omitempty"`
	// Databases are a PgBouncerFence's PgBouncer databases, by tenant
	// ID, where they are not named after the tenant's database.
	Databases map[string]string `json:"databases,omitempty"`
}

// fenceStart is the detail of a fence step's started entry: written
// before any fence goes up.
type fenceStart struct {
	Records []fenceRecord `json:"fence_records"`
}

// recordFences describes fences about to be held over targets.
func recordFences(fences []Fence, targets []FenceTarget) ([]fenceRecord, error) {
	out := make([]fenceRecord, 0, len(fences))
	for _, f := range fences {
		pgb := asPgBouncerFence(f)
		if pgb == nil {
			out = append(out, fenceRecord{Kind: f.Name()})
			continue
		}
		admin, err := connstring.WithoutPassword(pgb.Admin)
		if err != nil {
			return nil, fmt.Errorf("PgBouncerFence.Admin is not a valid connection string")
		}
		rec := fenceRecord{Kind: pgb.Name(), Admin: admin}
		for _, t := range targets {
			if db := pgb.database(t); db != t.Tenant.Database {
				if rec.Databases == nil {
					rec.Databases = map[string]string{}
				}
				rec.Databases[t.Tenant.ID] = db
			}
		}
		out = append(out, rec)
	}
	return out, nil
}

// asPgBouncerFence is f as a PgBouncerFence, given by value or by
// pointer, or nil.
func asPgBouncerFence(f Fence) *PgBouncerFence {
	switch f := f.(type) {
	case PgBouncerFence:
		return &f
	case *PgBouncerFence:
		return f
	}
	return nil
}

// journaledFences returns the records of the last fence step that
// started, or found false when the journal has none (a journal older
// than the records).
func journaledFences(entries []Entry) (records []fenceRecord, found bool) {
	for _, e := range entries {
		var d fenceStart
		if e.Step == StepFence && e.Status == StatusStarted && json.Unmarshal(e.Detail, &d) == nil && d.Records != nil {
			records, found = d.Records, true
		}
	}
	return records, found
}

// rebuildFences returns the fences records describe: the built-in ones
// from the records (with the password of a configured PgBouncerFence on
// the same console, else none: libpq's password file or environment
// supplies it), any other by its name among the configured fences.
func (m *Mover) rebuildFences(records []fenceRecord) ([]Fence, error) {
	var out []Fence
	for _, rec := range records {
		switch rec.Kind {
		case DatabaseFence{}.Name():
			out = append(out, DatabaseFence{})
		case PgBouncerFence{}.Name():
			admin := rec.Admin
			for _, f := range m.cfg.Fences {
				if c := asPgBouncerFence(f); c != nil {
					if bare, err := connstring.WithoutPassword(c.Admin); err == nil && bare == rec.Admin {
						admin = c.Admin
					}
				}
			}
			dbs := rec.Databases
			out = append(out, PgBouncerFence{Admin: admin, Database: func(t FenceTarget) string {
				if db, ok := dbs[t.Tenant.ID]; ok {
					return db
				}
				return t.Tenant.Database
			}})
		default:
			var found Fence
			for _, f := range m.cfg.Fences {
				if f.Name() == rec.Kind {
					found = f
				}
			}
			if found == nil {
				return nil, fmt.Errorf("fence %q was held by the interrupted run, and no fence of Config.Fences has that name: add it, so that Resume can release it", rec.Kind)
			}
			out = append(out, found)
		}
	}
	return out, nil
}

// heldBefore is what a resumed run must release: the fences its journal
// says went up, or, for a journal without records, the configured ones.
func (m *Mover) heldBefore(entries []Entry) ([]Fence, error) {
	records, found := journaledFences(entries)
	if !found {
		return m.cfg.Fences, nil
	}
	return m.rebuildFences(records)
}
