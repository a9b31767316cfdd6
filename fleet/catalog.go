package fleet

import "context"

// Catalog records the instances of a fleet and which instance serves each
// tenant. Implementations are safe for concurrent use.
type Catalog interface {
	// RegisterInstance adds an instance or updates the one with its ID.
	RegisterInstance(ctx context.Context, inst Instance) error
	// UnregisterInstance removes an instance that serves no tenant, so
	// that nothing can be placed or routed there any more: what a
	// conversion rolled back after registering its new instance undoes.
	// An instance that still has tenants is refused with
	// ErrInstanceInUse, an unknown one with ErrInstanceNotFound; nothing
	// changes when it fails.
	UnregisterInstance(ctx context.Context, id string) error
	// Instances lists all instances, ordered by ID.
	Instances(ctx context.Context) ([]Instance, error)
	// Instance returns one instance, or an error wrapping
	// ErrInstanceNotFound.
	Instance(ctx context.Context, id string) (Instance, error)
	// AddTenant registers a tenant on a registered instance. It fails
	// with ErrTenantExists if the ID is taken and ErrInstanceNotFound if
	// the instance is unknown.
	AddTenant(ctx context.Context, t Tenant) error
	// Tenants lists the tenants of an instance, ordered by ID. An unknown
	// instance is ErrInstanceNotFound.
	Tenants(ctx context.Context, instanceID string) ([]Tenant, error)
	// Locate returns the tenant and where it lives now, or an error
	// wrapping ErrTenantNotFound.
	Locate(ctx context.Context, tenantID string) (Tenant, error)
	// Assign records that the tenant is now served by the instance: the
	// record a cutover writes. An unknown tenant or instance is refused,
	// and with opts.From set, so is a tenant that is not on that instance
	// (ErrAssignConflict). Nothing changes when it fails.
	Assign(ctx context.Context, tenantID, instanceID string, opts *AssignOpts) error
}

// AssignOpts are optional arguments of Catalog.Assign; nil means none.
type AssignOpts struct {
	// From, if not empty, is the instance the tenant must be on for the
	// assignment to happen: a compare-and-set that keeps two movers of
	// one tenant from overwriting each other.
	From string
}
