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
// its window touches, and to the PgBouncer admin consoles of its fences:
// opened and checked before the window opens, so that no step inside it
// waits for a connection or an authentication, reused by every step,
// closed when the run ends. A nil *adminSessions holds none: each call
// connects for itself.
type adminSessions struct {
	mu       sync.Mutex
	sessions map[sessionKey]*adminSession
}

// sessionKey names a session: an instance's admin connection (by the
// instance's ID) or a PgBouncer admin console (by its connection string,
// which is never printed).
type sessionKey struct {
	console bool
	name    string
}

type adminSession struct {
	mu      sync.Mutex // a pgx.Conn runs one query at a time
	connect func(ctx context.Context) (*pgx.Conn, error)
	conn    *pgx.Conn // nil once broken: the next use connects again
}

// instanceSession is the admin session to inst, outside every database in
// avoid (the ones the window fences or opens).
func instanceSession(inst fleet.Instance, avoid []string) (sessionKey, func(context.Context) (*pgx.Conn, error)) {
	return sessionKey{name: inst.ID}, func(ctx context.Context) (*pgx.Conn, error) { return connectAdmin(ctx, inst, avoid...) }
}

// consoleSession is the session to a PgBouncer admin console.
func consoleSession(admin string) (sessionKey, func(context.Context) (*pgx.Conn, error)) {
	return sessionKey{console: true, name: admin}, func(ctx context.Context) (*pgx.Conn, error) { return connectConsole(ctx, admin) }
}

// open connects to inst, outside every database in avoid. A session
// already held is checked with a round trip instead (it may have been
// idle through a long catch-up) and replaced when that fails.
func (a *adminSessions) open(ctx context.Context, inst fleet.Instance, avoid []string) error {
	key, connect := instanceSession(inst, avoid)
	return a.openSession(ctx, key, connect)
}

// openConsole connects to a PgBouncer admin console, as open does.
func (a *adminSessions) openConsole(ctx context.Context, admin string) error {
	key, connect := consoleSession(admin)
	return a.openSession(ctx, key, connect)
}

func (a *adminSessions) openSession(ctx context.Context, key sessionKey, connect func(context.Context) (*pgx.Conn, error)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions == nil {
		a.sessions = map[sessionKey]*adminSession{}
	}
	if s, ok := a.sessions[key]; ok && s.conn != nil && !s.conn.IsClosed() {
		if err := s.conn.Ping(ctx); err == nil {
			return nil
		}
		s.close(ctx)
	}
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	a.sessions[key] = &adminSession{connect: connect, conn: conn}
	return nil
}

// do runs fn on the session held to inst (see doSession).
func (a *adminSessions) do(ctx context.Context, inst fleet.Instance, avoid []string, fn func(*pgx.Conn) error) error {
	key, connect := instanceSession(inst, avoid)
	return a.doSession(ctx, key, connect, fn)
}

// doConsole runs fn on the session held to a PgBouncer admin console (see
// doSession).
func (a *adminSessions) doConsole(ctx context.Context, admin string, fn func(*pgx.Conn) error) error {
	key, connect := consoleSession(admin)
	return a.doSession(ctx, key, connect, fn)
}

// doSession runs fn on the session held under key. Without one, or when
// it broke (a query cut off by its context closes a pgx connection), it
// connects for the call; and when fn fails on a session that broke under
// it, fn runs once more on a new one: fn must be idempotent.
func (a *adminSessions) doSession(ctx context.Context, key sessionKey, connect func(context.Context) (*pgx.Conn, error), fn func(*pgx.Conn) error) error {
	s := a.session(key, connect)
	s.mu.Lock()
	defer s.mu.Unlock()
	for try := 0; ; try++ {
		if s.conn == nil || s.conn.IsClosed() {
			conn, err := s.connect(ctx)
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

// session returns the session held under key, or a new one that
// doSession closes after its call when a is nil.
func (a *adminSessions) session(key sessionKey, connect func(context.Context) (*pgx.Conn, error)) *adminSession {
	if a == nil {
		return &adminSession{connect: connect}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions == nil {
		a.sessions = map[sessionKey]*adminSession{}
	}
	s, ok := a.sessions[key]
	if !ok {
		s = &adminSession{connect: connect}
		a.sessions[key] = s
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
