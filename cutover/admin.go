package cutover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
)

// adminSessions are the admin connections a run holds to the instances
// its window touches: opened and checked before the window opens, so that
// no step inside it waits for a connection or an authentication, reused
// by every step, closed when the run ends. A nil *adminSessions holds
// none: each call connects for itself.
type adminSessions struct {
	mu       sync.Mutex
	sessions map[string]*adminSession
}

type adminSession struct {
	mu    sync.Mutex // a pgx.Conn runs one query at a time
	inst  fleet.Instance
	avoid []string
	conn  *pgx.Conn // nil once broken: the next use connects again
}

// open connects to inst, outside every database in avoid (the ones the
// window fences or opens). A session already held is checked with a
// round trip instead (it may have been idle through a long catch-up) and
// replaced when that fails.
func (a *adminSessions) open(ctx context.Context, inst fleet.Instance, avoid []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions == nil {
		a.sessions = map[string]*adminSession{}
	}
	if s, ok := a.sessions[inst.ID]; ok && s.conn != nil && !s.conn.IsClosed() {
		if err := s.conn.Ping(ctx); err == nil {
			return nil
		}
		s.close(ctx)
	}
	conn, err := connectAdmin(ctx, inst, avoid...)
	if err != nil {
		return err
	}
	a.sessions[inst.ID] = &adminSession{inst: inst, avoid: avoid, conn: conn}
	return nil
}

// do runs fn on the session held to inst. Without one, or when it broke
// (a query cut off by its context closes a pgx connection), it connects
// for the call; and when fn fails on a session that broke under it, fn
// runs once more on a new one: fn must be idempotent.
func (a *adminSessions) do(ctx context.Context, inst fleet.Instance, avoid []string, fn func(*pgx.Conn) error) error {
	s := a.session(inst, avoid)
	s.mu.Lock()
	defer s.mu.Unlock()
	for try := 0; ; try++ {
		if s.conn == nil || s.conn.IsClosed() {
			conn, err := connectAdmin(ctx, s.inst, s.avoid...)
			if err != nil {
				return err
			}
			s.conn = conn
		}
		err := fn(s.conn)
		if err == nil || try > 0 || !s.conn.IsClosed() || ctx.Err() != nil {
			if a == nil {
				s.close(ctx)
			}
			return err
		}
	}
}

// session returns the held session to inst, or a new one that do closes
// after its call when a is nil.
func (a *adminSessions) session(inst fleet.Instance, avoid []string) *adminSession {
	if a == nil {
		return &adminSession{inst: inst, avoid: avoid}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions == nil {
		a.sessions = map[string]*adminSession{}
	}
	s, ok := a.sessions[inst.ID]
	if !ok {
		s = &adminSession{inst: inst, avoid: avoid}
		a.sessions[inst.ID] = s
	}
	return s
}

func (s *adminSession) close(ctx context.Context) {
	if s.conn != nil {
		s.conn.Close(context.WithoutCancel(ctx))
		s.conn = nil
	}
}

// close closes every session.
func (a *adminSessions) close(ctx context.Context) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.sessions {
		s.mu.Lock()
		s.close(ctx)
		s.mu.Unlock()
	}
	a.sessions = nil
}

// connectAdmin connects with the instance's admin connection string
// without letting a parse error quote it (it may hold a password). A
// database cannot refuse connections to the session changing it, so the
// admin session never sits in a database it fences or opens (avoid): it
// goes to "postgres" then.
func connectAdmin(ctx context.Context, inst fleet.Instance, avoid ...string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(inst.Admin)
	if err != nil {
		return nil, fmt.Errorf("cutover: %s: Admin is not a valid connection string", inst)
	}
	if cfg.Database == "" || slices.Contains(avoid, cfg.Database) {
		if slices.Contains(avoid, "postgres") {
			return nil, errors.New("cutover: " + inst.String() + ": the admin connection's database is one the window fences, and so is \"postgres\": name another database in Admin")
		}
		cfg.Database = "postgres"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cutover: connect to %s: %w", inst, err)
	}
	return conn, nil
}
