package flags

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/daisychain-db/daisychain/internal/idcheck"
)

// Publisher writes tenants' routes. Implementations refuse a route whose
// epoch is not greater than the tenant's current one (ErrStaleEpoch), so
// two publishers can never move a tenant backwards.
type Publisher interface {
	// Publish makes r the tenant's route. r must be valid and its Epoch
	// at least 1 (epoch 0 is the catalog's route).
	Publish(ctx context.Context, tenantID string, r Route) error
}

// TenantRoute is one route of a PublishMany.
type TenantRoute struct {
	Tenant string
	Route  Route
}

// BatchPublisher is the optional capability of a Publisher to publish the
// routes of many tenants at once (a Convert's pause, then its switch):
// all of them or none, each with its epoch checked, announced to readers
// in a few notifications that name the tenants, rather than one each.
// MemoryProvider and PostgresProvider have it.
type BatchPublisher interface {
	Publisher
	// PublishMany makes each route its tenant's route, all at once or
	// not at all. Every route is validated as by Publish, and checked
	// against the catalog in one pass when the publisher has one; if any
	// is refused, or any epoch is not greater than its tenant's current
	// one, nothing is published, and the error names every tenant at
	// fault: a *StaleEpochsError (errors.Is ErrStaleEpoch) for epochs.
	// A tenant may appear once. No routes: nothing to do.
	PublishMany(ctx context.Context, routes []TenantRoute) error
}

// RouteForgetter is the optional capability of a Publisher to delete a
// tenant's route once it says no more than the catalog, so that the route
// store holds overrides, not history: cutover's Retire calls it after the
// rollback period, when the catalog and the route both have the tenant on
// the move's target. MemoryProvider and PostgresProvider have it.
//
// Readers then fall back to the catalog, which says the same. A Resolver
// that served the forgotten route keeps serving it (it is where the
// catalog says) until a new one is published; the next move starts again
// at epoch 1, and Resolvers follow it although its epoch is lower than
// the forgotten one, because the route store's write sequence number
// (FlagMetadataSeq) says it is newer. Readers of daisychain versions
// without sequence numbers do not: upgrade every reader before a
// publisher forgets routes.
type RouteForgetter interface {
	// Forget deletes the tenant's route if it is still at epoch (a route
	// published since is kept) and announces it to readers. It reports
	// whether it deleted a route; no route, or one at another epoch, is
	// not an error. With a catalog, a route that says anything else than
	// the catalog (another instance, endpoint or database, or paused) is
	// refused with ErrNotForgettable: forgetting it would move the
	// tenant. Without one, that is the caller's to check.
	Forget(ctx context.Context, tenantID string, epoch int64) (bool, error)
}

// ErrNotForgettable: a route says something the catalog does not, so
// forgetting it would move the tenant; it is kept.
var ErrNotForgettable = errors.New("flags: route differs from the catalog's, so it cannot be forgotten")

// EpochConflict is one tenant whose route a publish refused because its
// epoch was not newer than the tenant's current one.
type EpochConflict struct {
	Tenant  string
	Held    int64 // the tenant's current epoch
	Refused int64 // the epoch refused
}

// StaleEpochsError is PublishMany's refusal of routes whose epoch is not
// newer than their tenant's current one: nothing was published. It wraps
// ErrStaleEpoch.
type StaleEpochsError struct {
	Conflicts []EpochConflict // ordered by tenant
}

func (e *StaleEpochsError) Error() string {
	const shown = 10
	var b strings.Builder
	fmt.Fprintf(&b, "%v: nothing published: %d tenant(s) refused:", ErrStaleEpoch, len(e.Conflicts))
	for i, c := range e.Conflicts {
		if i == shown {
			fmt.Fprintf(&b, " and %d more", len(e.Conflicts)-shown)
			break
		}
		fmt.Fprintf(&b, " %q at epoch %d refused epoch %d;", c.Tenant, c.Held, c.Refused)
	}
	return strings.TrimSuffix(b.String(), ";")
}

func (e *StaleEpochsError) Unwrap() error { return ErrStaleEpoch }

func staleEpoch(tenantID string, held, refused int64) error {
	return fmt.Errorf("%w: tenant %q is at epoch %d, refused epoch %d", ErrStaleEpoch, tenantID, held, refused)
}

func checkTenantID(tenantID string) error {
	if err := idcheck.Check("tenant ID", tenantID); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRoute, err)
	}
	return nil
}

// checkRoute validates the arguments of a publish of one route, without
// the catalog.
func checkRoute(tenantID string, r Route) error {
	if err := checkTenantID(tenantID); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("flags: publish route of tenant %q: %w", tenantID, err)
	}
	if r.Epoch < 1 {
		return fmt.Errorf("%w: published routes need epoch 1 or more (tenant %q)", ErrInvalidRoute, tenantID)
	}
	return nil
}

// checkPublish validates the arguments of Publish and, with a catalog,
// checks the route against it.
func checkPublish(ctx context.Context, catalog *catalogView, tenantID string, r Route) error {
	if err := checkRoute(tenantID, r); err != nil {
		return err
	}
	if catalog != nil {
		if err := catalog.check(ctx, r); err != nil {
			return fmt.Errorf("flags: publish route of tenant %q: %w", tenantID, err)
		}
	}
	return nil
}

// checkPublishMany validates the arguments of PublishMany and, with a
// catalog, checks every route against one read of its instances. The
// error names every tenant at fault.
func checkPublishMany(ctx context.Context, catalog *catalogView, routes []TenantRoute) error {
	var errs []error
	seen := make(map[string]bool, len(routes))
	for _, tr := range routes {
		if seen[tr.Tenant] {
			errs = append(errs, fmt.Errorf("%w: tenant %q appears twice", ErrInvalidRoute, tr.Tenant))
			continue
		}
		seen[tr.Tenant] = true
		if err := checkRoute(tr.Tenant, tr.Route); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && catalog != nil {
		errs = catalog.checkMany(ctx, routes)
	}
	if len(errs) > 0 {
		return fmt.Errorf("flags: publish %d routes: nothing published: %w", len(routes), errors.Join(errs...))
	}
	return nil
}

// checkForgetArgs refuses a Forget that could match no published route.
func checkForgetArgs(tenantID string, epoch int64) error {
	if err := checkTenantID(tenantID); err != nil {
		return err
	}
	if epoch < 1 {
		return fmt.Errorf("%w: forget tenant %q at epoch %d: published routes have epoch 1 or more", ErrInvalidRoute, tenantID, epoch)
	}
	return nil
}

// checkForget, with a catalog, refuses to forget a route that says something the catalog does not.
// It asks the catalog itself, not the view's cached answers: forgetting
// a route the catalog has just stopped backing would move the tenant.
func checkForget(ctx context.Context, view *catalogView, tenantID string, r Route) error {
	if view == nil {
		return nil
	}
	catalog := view.catalog
	t, err := catalog.Locate(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("flags: forget the route of tenant %q: %w", tenantID, err)
	}
	inst, err := catalog.Instance(ctx, t.Instance)
	if err != nil {
		return fmt.Errorf("flags: forget the route of tenant %q: instance %q: %w", tenantID, t.Instance, err)
	}
	want := RouteTo(inst, t.Database, r.Epoch)
	want.Move = r.Move
	if r != want {
		return fmt.Errorf("%w: tenant %q: route %s, catalog %s", ErrNotForgettable, tenantID, r, want)
	}
	return nil
}

func sortConflicts(cs []EpochConflict) []EpochConflict {
	slices.SortFunc(cs, func(a, b EpochConflict) int { return strings.Compare(a.Tenant, b.Tenant) })
	return cs
}
