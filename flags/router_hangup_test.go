package flags_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/flags/flagstest"
)

// silentConn is a connection whose peer never answers once the client
// has shut its side down: a server, or a network, that does not hang up.
type silentConn struct {
	net.Conn
	silent <-chan struct{} // reads after CloseWrite wait until it closes
	shut   atomic.Bool
}

func (c *silentConn) CloseWrite() error {
	c.shut.Store(true)
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *silentConn) Read(b []byte) (int, error) {
	if c.shut.Load() {
		<-c.silent
	}
	return c.Conn.Read(b)
}

// TestRouterReleaseDoesNotWaitForHangup: when another tenant's pool waits
// for a connection slot of the instance, Release closes the connection
// it returns (to free the slot), and returns without waiting for the
// server to hang up: a slow network never holds up the host's Release.
func TestRouterReleaseDoesNotWaitForHangup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOneEnv(t)
	e.addTenant(t, "u2", "db_u2")
	silent := make(chan struct{})
	speak := sync.OnceFunc(func() { close(silent) })
	defer speak()
	base := flagstest.PoolConfig(e.byID, "application_name="+routerApp+"&pool_max_conns=2")
	res, err := flags.NewResolver(flagstest.Client(t, flags.NewMemoryProvider()), e.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := flags.NewRouter(&flags.RouterConfig{Resolver: res, MaxConnsPerInstance: 1,
		PoolConfig: func(ctx context.Context, route flags.Route) (*pgxpool.Config, error) {
			cfg, err := base(ctx, route)
			if err != nil {
				return nil, err
			}
			dial := cfg.ConnConfig.DialFunc
			cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &silentConn{Conn: c, silent: silent}, nil
			}
			return cfg, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer speak() // before r.Close, which waits for the hangups

	held, err := r.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		c, err := r.Acquire(ctx, "u2")
		if err == nil {
			c.Release()
		}
		got <- err
	}()
	waitFor(t, "u2's pool to wait for the instance's one slot", 10*time.Second,
		func() bool { return flags.BudgetWaiters(r, "pg-a") == 1 })
	released := make(chan struct{})
	go func() {
		held.Release()
		close(released)
	}()
	select {
	case <-released:
	case <-time.After(10 * time.Second): // a hang, not a speed goal: the server stays silent
		t.Error("Release still waits for the server to hang up")
		speak()
		<-released
	}
	speak()
	if err := <-got; err != nil {
		t.Errorf("u2, once t1's connection is closed: %v", err)
	}
}
