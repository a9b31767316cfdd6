package flags

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/daisychain-db/daisychain/internal/pgclose"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// instanceBudget holds a Router's server connections to one instance
// within RouterConfig.MaxConnsPerInstance: every connection of the
// instance's pools takes a slot when it dials and gives it back when its
// socket closes, so the count is of sockets, exactly what the server
// sees, whoever closes them (the pool, its health check, a failed
// connect, the server).
type instanceBudget struct {
	r        *Router
	instance string
	slots    chan struct{} // one token per open connection
	waiting  atomic.Int32  // dials waiting for a slot
	closing  atomic.Int32  // connections closed whose slot is not back yet

	// reclaim serializes the choice of idle connections to close, so
	// that waiting dials close one each, not one each per look.
	reclaim sync.Mutex

	mu    sync.Mutex
	pools map[*routePool]bool // the instance's open pools
}

// budget returns the instance's budget, made when first needed.
func (r *Router) budget(instance string) *instanceBudget {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.budgets[instance]
	if b == nil {
		b = &instanceBudget{r: r, instance: instance, slots: make(chan struct{}, r.maxConns), pools: map[*routePool]bool{}}
		r.budgets[instance] = b
	}
	return b
}

// limit makes every connection of the pool cfg configures dial through
// the budget.
func (b *instanceBudget) limit(cfg *pgxpool.Config) {
	prev := cfg.BeforeConnect
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		if prev != nil {
			if err := prev(ctx, cc); err != nil {
				return err
			}
		}
		cc.DialFunc = b.dialer(cc.DialFunc)
		return nil
	}
}

// dialer returns the dial function of one connection: its first dial,
// and a dial after its socket closed (pgx's next TLS or host fallback),
// take a slot; a dial while its socket is open is a cancel request, which
// opens no session and closes at once, and takes none.
func (b *instanceBudget) dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	var mu sync.Mutex
	var open *budgetConn
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		cancelRequest := open != nil && !open.closed.Load()
		mu.Unlock()
		if cancelRequest {
			return dial(ctx, network, addr)
		}
		if err := b.take(ctx); err != nil {
			return nil, err
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			b.give()
			return nil, err
		}
		bc := &budgetConn{Conn: c, b: b}
		mu.Lock()
		open = bc
		mu.Unlock()
		return bc, nil
	}
}

// A dial waiting for a slot looks for an idle connection to close when
// it starts waiting, then again after reclaimInterval, backing off to
// reclaimIntervalMax: connections also go idle without being released
// (one made for a caller that gave up meanwhile), which nothing
// announces. A connection released while dials wait is closed at once
// (see releaseTracer).
const (
	reclaimInterval    = 10 * time.Millisecond
	reclaimIntervalMax = time.Second
)

// take waits for a slot: at once if one is free; otherwise once an idle
// connection of the instance's pools is closed for it, or one closes, or
// until the context ends or the Router closes.
func (b *instanceBudget) take(ctx context.Context) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	default:
	}
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	wait := backoff.NewExponentialBackOff(backoff.WithInitialInterval(reclaimInterval),
		backoff.WithMaxInterval(reclaimIntervalMax), backoff.WithMaxElapsedTime(0))
	look := time.NewTimer(0)
	defer look.Stop()
	for {
		select {
		case b.slots <- struct{}{}:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("flags: instance %q: waiting for one of its %d connections (RouterConfig.MaxConnsPerInstance): %w",
				b.instance, cap(b.slots), context.Cause(ctx))
		case <-b.r.done:
			return fmt.Errorf("flags: router: %w", ErrClosed)
		case <-look.C:
			select { // a slot freed meanwhile is taken, not reclaimed again
			case b.slots <- struct{}{}:
				return nil
			default:
			}
			b.reclaimIdle(ctx)
			look.Reset(wait.NextBackOff())
		}
	}
}

func (b *instanceBudget) give() { <-b.slots }

// hangupWait bounds how long a closed connection's slot waits for the
// server to hang up.
const hangupWait = time.Second

// budgetConn gives its slot back when the socket closes, once the server
// has hung up: its backend is gone then, so that a connection made with
// the slot is never one too many on the server either. The wait for the
// hangup runs apart from Close, so that whoever closes (a Release freeing
// a slot, a pool closing) never waits on the network.
type budgetConn struct {
	net.Conn
	b      *instanceBudget
	closed atomic.Bool
}

func (c *budgetConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		// Closing already (pgconn closes twice): closing the socket now
		// would end the wait for the hangup early.
		return nil
	}
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		defer c.b.give()
		return c.Conn.Close()
	}
	c.b.closing.Add(1)
	c.b.r.hangups.Go(func() {
		defer c.b.closing.Add(-1)
		defer c.b.give()
		_ = c.Conn.SetReadDeadline(time.Now().Add(hangupWait))
		_, _ = io.Copy(io.Discard, c.Conn)
		_ = c.Conn.Close()
	})
	return nil
}

// short reports whether dials wait for more slots than are free or will
// be given back by the connections closing.
func (b *instanceBudget) short() bool {
	free := cap(b.slots) - len(b.slots)
	return int(b.waiting.Load()) > int(b.closing.Load())+free
}

// reclaimIdle closes as many idle connections of the instance's pools as
// the waiting dials need beyond those already closing, from the pools
// unused longest.
func (b *instanceBudget) reclaimIdle(ctx context.Context) {
	var taken []*pgxpool.Conn
	defer func() {
		// Those not closed go back as they were, after reclaim is
		// unlocked: releaseTracer closes them only if still short.
		for _, c := range taken {
			c.Release()
		}
	}()
	b.reclaim.Lock()
	defer b.reclaim.Unlock()
	if !b.short() {
		return
	}
	b.mu.Lock()
	pools := make([]*routePool, 0, len(b.pools))
	for rp := range b.pools {
		pools = append(pools, rp)
	}
	b.mu.Unlock()
	last := make(map[*routePool]uint64, len(pools))
	for _, rp := range pools {
		last[rp] = rp.lastUse.Load()
	}
	slices.SortFunc(pools, func(x, y *routePool) int { return cmp.Compare(last[x], last[y]) })
	for _, rp := range pools {
		if !b.short() {
			return
		}
		if rp.pool.Stat().IdleConns() == 0 {
			continue
		}
		// pgxpool hands out idle connections only all at once.
		for _, c := range rp.pool.AcquireAllIdle(ctx) {
			if b.short() {
				closeConn(c.Conn())
			}
			taken = append(taken, c)
		}
	}
}

// released decides, under reclaim, whether a connection just released
// on a pool of the instance is closed to give its slot to a waiting dial.
func (b *instanceBudget) released(conn *pgx.Conn) {
	b.reclaim.Lock()
	defer b.reclaim.Unlock()
	if b.short() {
		closeConn(conn)
	}
}

// add and remove keep the instance's open pools, for reclaimIdle.
func (b *instanceBudget) add(rp *routePool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pools[rp] = true
}

func (b *instanceBudget) remove(rp *routePool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pools, rp)
}

// closeConn closes a pooled connection that is not in use, so that the
// pool drops it when it is released.
func closeConn(c *pgx.Conn) { pgclose.Conn(c, time.Second) }
