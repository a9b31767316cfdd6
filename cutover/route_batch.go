package cutover

import (
	"context"
	"errors"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
)

// publishSet makes the routes of trs point at inst, each with its next
// epoch: in one batch where the Publisher can, else tenant by tenant,
// parallelDefault at a time.
func (m *Mover) publishSet(ctx context.Context, trs []*tenantRoute, inst fleet.Instance, paused bool) error {
	if bp, ok := m.cfg.Publisher.(flags.BatchPublisher); ok && len(trs) > 1 {
		batch := make([]flags.TenantRoute, len(trs))
		for i, tr := range trs {
			batch[i] = flags.TenantRoute{Tenant: tr.tenant, Route: tr.next(inst, paused)}
			tr.touched = true // even a failed publish may have committed
		}
		err := m.retryPublish(ctx, func() error { return bp.PublishMany(ctx, batch) })
		if err == nil {
			for i, tr := range trs {
				tr.epoch = batch[i].Route.Epoch
			}
			return nil
		}
		if !errors.Is(err, flags.ErrStaleEpoch) {
			return err
		}
		// A try whose acknowledgement was lost may have committed the
		// batch: tenant by tenant, publishRoute tells.
	}
	return inParallel(ctx, len(trs), parallelDefault, func(ctx context.Context, i int) error {
		_, err := m.publishRoute(ctx, trs[i], inst, paused)
		return err
	})
}
