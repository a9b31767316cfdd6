package cutover

import (
	"context"
	"errors"
	"fmt"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// tenantRoute is what a move knows of one tenant's route.
type tenantRoute struct {
	tenant, database string
	// move is the ID of the move publishing.
	move string
	// epoch is the highest epoch seen or published for the tenant.
	epoch int64
	// touched: a route may have been published (a rollback must
	// supersede it).
	touched bool
}

// next is the route to inst at the epoch after the highest seen.
func (tr *tenantRoute) next(inst fleet.Instance, paused bool) flags.Route {
	route := flags.RouteTo(inst, tr.database, tr.epoch+1)
	route.Paused, route.Move = paused, tr.move
	return route
}

// epochDetail is journaled by the steps that publish routes: the highest
// epoch published, which Resume takes as the floor of every route of the
// set (epochs need only grow). Journals written before held one per
// tenant, which Resume reads too.
type epochDetail struct {
	Tenant   string `json:"tenant,omitempty"`
	Tenants  int    `json:"tenants,omitempty"`
	Epoch    int64  `json:"epoch"`
	Instance string `json:"instance"`
	Paused   bool   `json:"paused"`
}

// publishRoute makes the tenant's route point at inst with the next epoch.
// A Publish lost with its connection is tried again (see retryPublish).
func (m *Mover) publishRoute(ctx context.Context, tr *tenantRoute, inst fleet.Instance, paused bool) (epochDetail, error) {
	route := tr.next(inst, paused)
	tr.touched = true // even a failed Publish may have committed
	err := m.publish(ctx, tr.tenant, route)
	if errors.Is(err, flags.ErrStaleEpoch) {
		// A try whose acknowledgement was lost may have committed this
		// very route, or an earlier Publish of this move a later epoch.
		cur, found, rerr := m.readPublished(ctx, tr.tenant)
		switch {
		case rerr != nil || !found:
		case cur.Move != tr.move:
			// Another mover's route: this move's is not there, and a
			// rollback must not put it back over the other's.
			tr.touched = false
		case cur == route:
			err = nil
		case cur.Epoch > tr.epoch:
			tr.epoch = cur.Epoch
			route.Epoch = tr.epoch + 1
			err = m.publish(ctx, tr.tenant, route)
		}
	}
	if errors.Is(err, flags.ErrStaleEpoch) {
		return epochDetail{}, fmt.Errorf("%w: %v", ErrRouteConflict, err)
	}
	if err != nil {
		return epochDetail{}, err
	}
	tr.epoch = route.Epoch
	return epochDetail{Tenant: tr.tenant, Epoch: route.Epoch, Instance: inst.ID, Paused: paused}, nil
}

// publish publishes a route (see retryPublish).
func (m *Mover) publish(ctx context.Context, tenant string, route flags.Route) error {
	return m.retryPublish(ctx, func() error { return m.cfg.Publisher.Publish(ctx, tenant, route) })
}

// retryPublish runs a publish again while the control database
// connection is lost (see retryControl): a failover or a terminated
// session must not fail a switch. What the Publisher refused for the
// routes themselves is final.
func (m *Mover) retryPublish(ctx context.Context, op func() error) error {
	return retryControl(ctx, func(err error) bool {
		for _, refused := range []error{flags.ErrStaleEpoch, flags.ErrInvalidRoute, flags.ErrUnknownInstance,
			flags.ErrEndpointMismatch, flags.ErrClosed} {
			if errors.Is(err, refused) {
				return true
			}
		}
		return false
	}, op)
}

// readPublished reads the tenant's route back from the Publisher, if it
// can (PublishedReader).
func (m *Mover) readPublished(ctx context.Context, tenant string) (flags.Route, bool, error) {
	pr, ok := m.cfg.Publisher.(PublishedReader)
	if !ok {
		return flags.Route{}, false, fmt.Errorf("the Publisher (%T) cannot read routes back (it has no Published method)", m.cfg.Publisher)
	}
	return pr.Published(ctx, tenant)
}
