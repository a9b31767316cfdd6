package cutover

import (
	"context"
	"fmt"
	"sync"
)

// parallelDefault is how many per-tenant calls a run makes at once where
// a set has no batch form (a Publisher without PublishMany, a Fence
// without HoldAll): enough to hide round trips, few enough to spare the
// server at the other end.
const parallelDefault = 16

// inParallel calls fn for 0..n-1, at most limit at a time, and returns
// their errors (see joinSome). It starts no call once ctx has ended.
func inParallel(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	errs := make([]error, n)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("%d of %d not started: %w", n-i, n, ctx.Err())
		}
		if errs[i] != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(ctx, i)
		})
	}
	wg.Wait()
	return joinSome(errs)
}
