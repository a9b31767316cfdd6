package fleet

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/daisychain-db/daisychain/internal/bytesize"
	"github.com/daisychain-db/daisychain/internal/idcheck"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInstanceNotFound: no instance with that ID is registered.
	ErrInstanceNotFound = errors.New("fleet: instance not found")
	// ErrTenantNotFound: no tenant with that ID is registered.
	ErrTenantNotFound = errors.New("fleet: tenant not found")
	// ErrTenantExists: a tenant with that ID is already registered.
	ErrTenantExists = errors.New("fleet: tenant already exists")
	// ErrAssignConflict: the tenant is not on the instance the caller
	// expected (someone else moved it).
	ErrAssignConflict = errors.New("fleet: tenant is not where expected")
	// ErrInstanceInUse: the instance still serves tenants, so it cannot
	// be unregistered; the error says how many.
	ErrInstanceInUse = errors.New("fleet: instance still has tenants")
	// ErrInvalid: an argument is malformed; the error says which. It is
	// daisychain's one "invalid input" concept: every package's own
	// invalid sentinel (drain.ErrInvalid, replica.ErrInvalidSpec,
	// flags.ErrInvalidRoute, the ErrInvalidConfig of cutover, flags and
	// fleetjobs, fleetjobs.ErrInvalidArgs) is also ErrInvalid under
	// errors.Is, so one check tells "fix the input" from the rest.
	ErrInvalid = errors.New("fleet: invalid argument")
)

// Endpoint is where applications connect to reach an instance. It never
// holds credentials: those come from the application's own configuration.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

func (e Endpoint) String() string { return fmt.Sprintf("%s:%d", e.Host, e.Port) }

// Limits bound what an instance may hold: at most MaxFiles files,
// MaxTenants tenants and MaxBytes bytes. Any combination may be set; zero
// leaves that dimension unlimited, so the zero Limits limits nothing. The
// same bounds are drain's threshold (drain.Threshold), the level a drain
// gets an instance to.
type Limits struct {
	// MaxFiles is the most relation files (forks and segments included)
	// over all tenant databases.
	MaxFiles int64 `json:"max_files,omitempty"`
	// MaxTenants is the most tenant databases.
	MaxTenants int64 `json:"max_tenants,omitempty"`
	// MaxBytes is the most bytes over all tenant databases.
	MaxBytes int64 `json:"max_bytes,omitempty"`
}

// IsZero reports whether l limits nothing.
func (l Limits) IsZero() bool { return l == Limits{} }

// String lists the set fields, as in "files <= 900, bytes <= 1.0 GiB", or
// says "no limit".
func (l Limits) String() string {
	var parts []string
	if l.MaxFiles != 0 {
		parts = append(parts, fmt.Sprintf("files <= %d", l.MaxFiles))
	}
	if l.MaxTenants != 0 {
		parts = append(parts, fmt.Sprintf("tenants <= %d", l.MaxTenants))
	}
	if l.MaxBytes != 0 {
		parts = append(parts, "bytes <= "+bytesize.Format(l.MaxBytes))
	}
	if len(parts) == 0 {
		return "no limit"
	}
	return strings.Join(parts, ", ")
}

// Instance is one PostgreSQL server.
type Instance struct {
	// ID names the instance; unique in a catalog.
	ID string `json:"id"`
	// Admin is the connection string the library uses, as a role that
	// can create databases, publications and subscriptions. It may hold a
	// password, so it is never printed, logged or marshalled; the
	// PostgresCatalog stores it without the password.
	Admin string `json:"-"`
	// Endpoint is where applications connect.
	Endpoint Endpoint `json:"endpoint"`
	// Limits bound what the instance may hold.
	Limits Limits `json:"limits"`
}

// String describes the instance without secrets.
func (i Instance) String() string {
	return fmt.Sprintf("instance %s (%s)", i.ID, i.Endpoint)
}

// LogValue keeps Admin out of structured logs.
func (i Instance) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", i.ID), slog.String("endpoint", i.Endpoint.String()))
}

func (i Instance) validate() error {
	var errs []error
	if err := validateID("instance ID", i.ID); err != nil {
		errs = append(errs, err)
	}
	if i.Admin == "" {
		errs = append(errs, fmt.Errorf("%w: instance %q has no Admin connection string", ErrInvalid, i.ID))
	}
	if i.Endpoint.Host == "" || i.Endpoint.Port <= 0 || i.Endpoint.Port > 65535 {
		errs = append(errs, fmt.Errorf("%w: instance %q endpoint %q needs a host and a port in 1..65535",
			ErrInvalid, i.ID, i.Endpoint))
	}
	if i.Limits.MaxFiles < 0 || i.Limits.MaxTenants < 0 || i.Limits.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: instance %q has a negative limit", ErrInvalid, i.ID))
	}
	return errors.Join(errs...)
}

// Tenant is one customer's database.
type Tenant struct {
	// ID names the tenant; unique in a catalog. It is the targeting key
	// of the tenant's route flag.
	ID string `json:"id"`
	// Database is the name of the tenant's database on its instance.
	Database string `json:"database"`
	// Instance is the ID of the instance that serves the tenant.
	Instance string `json:"instance"`
}

func (t Tenant) validate() error {
	var errs []error
	if err := validateID("tenant ID", t.ID); err != nil {
		errs = append(errs, err)
	}
	if t.Database == "" || len(t.Database) > 63 || strings.ContainsRune(t.Database, 0) {
		errs = append(errs, fmt.Errorf("%w: tenant %q database name %q must be 1 to 63 bytes without NUL",
			ErrInvalid, t.ID, t.Database))
	}
	if err := validateID("instance ID", t.Instance); err != nil {
		errs = append(errs, fmt.Errorf("tenant %q: %w", t.ID, err))
	}
	return errors.Join(errs...)
}

func validateID(what, id string) error {
	if err := idcheck.Check(what, id); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}
