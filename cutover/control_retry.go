package cutover

import (
	"context"
	"time"

	"github.com/daisychain-db/daisychain/internal/pgretry"
)

// controlRetryMax bounds how long a journal write or read, or a publish of
// a route, is tried again while its control database connection is lost
// (a failover, a terminated session); the window's budget bounds it too.
const controlRetryMax = 30 * time.Second

// retryControl runs op again, with backoff, while it fails for a lost
// connection (pgretry.Transient) and final, if not nil, does not say the
// error is an answer rather than a loss.
func retryControl(ctx context.Context, final func(error) bool, op func() error) error {
	return pgretry.Retry(ctx, controlRetryMax, 20*time.Millisecond, func(err error) bool {
		return (final == nil || !final(err)) && pgretry.Transient(err)
	}, op)
}
