package localpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daisychain-db/daisychain/internal/connstring"
)

// Host is the address every instance listens on.
const Host = "127.0.0.1"

// ErrNotRunning is returned by operations that need a running server.
var ErrNotRunning = errors.New("localpg: instance is not running")

// Instance is one throwaway PostgreSQL server. Its methods are safe for
// concurrent use.
type Instance struct {
	cfg    Config
	binDir string
	as     *runAs
	dir    string // everything of the instance lives below it
	port   int

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed when proc has been reaped
	closed bool
}

// Start creates and starts an instance. A nil cfg means all defaults. On
// error nothing is left behind: no process, no directory.
func Start(ctx context.Context, cfg *Config) (*Instance, error) {
	c, binDir, as, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	tmpl, err := templateDir(binDir, c.BaseDir, as)
	if err != nil {
		return nil, err
	}
	return build(c, binDir, as, "started", func(inst *Instance) error { return inst.create(ctx, tmpl) })
}

// build makes the instance's directory and runs create in it; if create
// fails, it closes the instance, so nothing is left behind.
func build(c Config, binDir string, as *runAs, what string, create func(*Instance) error) (*Instance, error) {
	dir, err := os.MkdirTemp(c.BaseDir, "localpg-"+c.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	inst := &Instance{cfg: c, binDir: binDir, as: as, dir: dir}
	if err := create(inst); err != nil {
		return nil, errors.Join(err, inst.Close())
	}
	c.Logger.Info("localpg: "+what, "instance", c.Name, "port", inst.port, "dir", dir)
	return inst, nil
}

// resolve completes and checks cfg, finds the server binaries and the
// system user the server runs as, and checks that it can reach BaseDir.
func resolve(cfg *Config) (Config, string, *runAs, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return c, "", nil, err
	}
	binDir, err := FindBinDir(c.BinDir)
	if err != nil {
		return c, "", nil, err
	}
	as, err := lookupRunAs(c.OSUser)
	if err != nil {
		return c, "", nil, err
	}
	if err := as.checkReachable(c.BaseDir); err != nil {
		return c, "", nil, err
	}
	return c, binDir, as, nil
}

func (i *Instance) create(ctx context.Context, tmpl string) error {
	if err := os.Chmod(i.dir, 0o755); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if err := copyTree(tmpl, i.DataDir()); err != nil {
		return fmt.Errorf("localpg: copy template: %w", err)
	}
	if err := os.Mkdir(i.SocketDir(), 0o755); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if err := os.WriteFile(filepath.Join(i.DataDir(), "pg_hba.conf"), []byte(i.hba()), 0o600); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if err := i.as.chownTree(i.dir); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if err := i.startOnFreePort(ctx); err != nil {
		return err
	}
	return i.setPassword(ctx)
}

// startOnFreePort writes postgresql.conf with a chosen port and starts the
// server. A chosen port may be taken between choosing and binding; it
// tries again with another one.
func (i *Instance) startOnFreePort(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if i.port, err = i.choosePort(); err != nil {
			return err
		}
		if err = i.writeConf(); err != nil {
			return err
		}
		i.mu.Lock()
		err = i.startLocked(ctx)
		i.mu.Unlock()
		if err == nil {
			return nil
		}
		if i.cfg.Port != 0 || !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return err
}

// setPassword gives the superuser its password over the Unix socket,
// which trusts local connections; until then, TCP connections cannot
// authenticate at all.
//
// The password must not reach the server log, whatever the instance's
// settings (log_statement = all, a slow-statement threshold of 0...): the
// session starts with statement, duration and error-statement logging off
// (the superuser may set them), and the password travels as a bound
// parameter of a temporary function, so no statement text carries it, in
// the log or in pg_stat_activity; ALTER ROLE runs inside the function.
func (i *Instance) setPassword(ctx context.Context) error {
	if i.cfg.Password == "" {
		return nil
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = i.SocketDir(), uint16(i.port), SuperuserDefault, "postgres"
	maps.Copy(cfg.RuntimeParams, quietSession)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("localpg: %s: connect over the Unix socket to set the password: %w", i.cfg.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CREATE FUNCTION pg_temp.localpg_set_password(role text, password text)
		RETURNS void LANGUAGE plpgsql AS $$
		BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', role, password); END $$`); err != nil {
		return fmt.Errorf("localpg: %s: set the password: %w", i.cfg.Name, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_temp.localpg_set_password($1, $2)", SuperuserDefault, i.cfg.Password); err != nil {
		// The error's context quotes the ALTER ROLE statement, password
		// included: keep only its message and code.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return fmt.Errorf("localpg: %s: set the password: %s (SQLSTATE %s)", i.cfg.Name, pgErr.Message, pgErr.Code)
		}
		return fmt.Errorf("localpg: %s: set the password failed", i.cfg.Name)
	}
	return nil
}

// quietSession are the settings of a session that handles a password: no
// statement, parameter, duration or parse tree reaches the server log,
// and neither does an error (whose context may quote a statement).
var quietSession = map[string]string{
	"log_statement":                     "none",
	"log_min_duration_statement":        "-1",
	"log_min_duration_sample":           "-1",
	"log_duration":                      "off",
	"log_min_error_statement":           "panic",
	"log_min_messages":                  "fatal",
	"log_parameter_max_length":          "0",
	"log_parameter_max_length_on_error": "0",
	"debug_print_parse":                 "off",
	"debug_print_rewritten":             "off",
	"debug_print_plan":                  "off",
}

func (i *Instance) choosePort() (int, error) {
	if i.cfg.Port != 0 {
		return i.cfg.Port, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		return 0, fmt.Errorf("localpg: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (i *Instance) hba() string {
	method := "trust"
	if i.cfg.Password != "" {
		method = "scram-sha-256"
	}
	var b strings.Builder
	b.WriteString("# written by localpg\n")
	// The Unix socket lives in the instance's own directory.
	b.WriteString("local all all trust\nlocal replication all trust\n")
	for _, db := range []string{"all", "replication"} {
		for _, addr := range []string{"127.0.0.1/32", "::1/128"} {
			fmt.Fprintf(&b, "host %s all %s %s\n", db, addr, method)
		}
	}
	return b.String()
}

func (i *Instance) writeConf() error {
	lines := i.cfg.settings(i.port, i.SocketDir())
	body := "# written by localpg\n" + strings.Join(lines, "\n") + "\n"
	path := filepath.Join(i.DataDir(), "postgresql.conf")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return i.as.chownTree(path)
}

var errPortInUse = errors.New("port in use")

// startLocked starts the server and waits until it accepts connections.
func (i *Instance) startLocked(ctx context.Context) error {
	if i.closed {
		return fmt.Errorf("localpg: %s: instance is closed", i.cfg.Name)
	}
	if i.proc != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, i.cfg.StartTimeout)
	defer cancel()
	for {
		err := i.spawnLocked(ctx)
		if err == nil {
			return nil
		}
		// After a kill, the old server's children may still hold its
		// shared memory for a moment; the new postmaster refuses until
		// they are gone.
		if !strings.Contains(err.Error(), "pre-existing shared memory block") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (i *Instance) spawnLocked(ctx context.Context) error {
	logf, err := os.OpenFile(i.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	cmd := exec.Command(filepath.Join(i.binDir, "postgres"), "-D", i.DataDir())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = i.dir
	i.as.apply(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localpg: %s: start postgres: %w", i.cfg.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	i.proc, i.exited = cmd.Process, exited

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if i.acceptsConnections() {
			return nil
		}
		select {
		case <-exited:
			i.proc, i.exited = nil, nil
			tail := i.logSince(logStart)
			if strings.Contains(tail, "could not bind") || strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("localpg: %s: %w (port %d): %s", i.cfg.Name, errPortInUse, i.port, tail)
			}
			return fmt.Errorf("localpg: %s: postgres exited during start; log:\n%s", i.cfg.Name, tail)
		case <-ctx.Done():
			_ = i.signalAndWaitLocked(syscall.SIGQUIT, 10*time.Second)
			return fmt.Errorf("localpg: %s: not ready after %s: %w; log:\n%s",
				i.cfg.Name, i.cfg.StartTimeout, ctx.Err(), i.logSince(logStart))
		case <-tick.C:
		}
	}
}

// acceptsConnections reads the status line that the postmaster keeps in
// postmaster.pid (the same signal pg_ctl waits for), which costs no
// connection.
func (i *Instance) acceptsConnections() bool {
	b, err := os.ReadFile(filepath.Join(i.DataDir(), "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 8 || strings.TrimSpace(lines[0]) != strconv.Itoa(i.proc.Pid) {
		return false
	}
	status := strings.TrimSpace(lines[7])
	return status == "ready" || status == "standby"
}

func (i *Instance) logSince(offset int64) string {
	b, err := os.ReadFile(i.LogPath())
	if err != nil {
		return err.Error()
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return strings.TrimSpace(string(b[offset:]))
}

// Log returns the server log so far.
func (i *Instance) Log() string { return i.logSince(0) }

// signalAndWaitLocked signals the postmaster and waits for it to exit,
// escalating to SIGKILL after timeout.
func (i *Instance) signalAndWaitLocked(sig syscall.Signal, timeout time.Duration) error {
	if i.proc == nil {
		return nil
	}
	_ = i.proc.Signal(sig)
	select {
	case <-i.exited:
	case <-time.After(timeout):
		_ = i.proc.Kill()
		<-i.exited
	}
	i.proc, i.exited = nil, nil
	return nil
}

// Stop shuts the server down (fast shutdown: sessions are ended, and
// everything committed is kept) and waits for it. The data stays for
// Restart. Stopping a stopped instance does nothing.
func (i *Instance) Stop() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.signalAndWaitLocked(syscall.SIGINT, 30*time.Second)
}

// Kill sends SIGKILL to the server and all its processes at once, as a
// crash of its machine would, and waits for the postmaster to die.
// Restart starts the server again, which then runs crash recovery.
func (i *Instance) Kill() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.proc == nil {
		return ErrNotRunning
	}
	_ = syscall.Kill(-i.proc.Pid, syscall.SIGKILL)
	return i.signalAndWaitLocked(syscall.SIGKILL, time.Minute)
}

// Restart stops the server if it runs (fast shutdown) and starts it again
// on the same port, waiting until it accepts connections. Sessions are
// ended; data is kept.
func (i *Instance) Restart(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.signalAndWaitLocked(syscall.SIGINT, 30*time.Second); err != nil {
		return err
	}
	return i.startLocked(ctx)
}

// Running reports whether the server process is running.
func (i *Instance) Running() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.proc != nil
}

// Close stops the server (immediate shutdown) and removes the instance's
// directory. It is safe to call more than once.
func (i *Instance) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	err := i.signalAndWaitLocked(syscall.SIGQUIT, 10*time.Second)
	if rmErr := os.RemoveAll(i.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("localpg: remove %s: %w", i.dir, rmErr))
	}
	i.cfg.Logger.Info("localpg: closed", "instance", i.cfg.Name)
	return err
}

// Name returns Config.Name.
func (i *Instance) Name() string { return i.cfg.Name }

// Port returns the TCP port the server listens on, on Host.
func (i *Instance) Port() int { return i.port }

// Dir is the instance's directory; DataDir, SocketDir and LogPath are in it.
func (i *Instance) Dir() string { return i.dir }

// DataDir is the server's data directory.
func (i *Instance) DataDir() string { return filepath.Join(i.dir, "data") }

// SocketDir is the directory of the server's Unix socket.
func (i *Instance) SocketDir() string { return filepath.Join(i.dir, "run") }

// LogPath is the file that receives the server's log.
func (i *Instance) LogPath() string { return filepath.Join(i.dir, "server.log") }

// BinDir is the directory of the server binaries in use.
func (i *Instance) BinDir() string { return i.binDir }

// ConnString returns a URL connecting as the superuser to database over
// TCP. It contains the password: pass it to a driver, never print it; use
// Redact or the Instance's String for output.
func (i *Instance) ConnString(database string) string {
	return i.connURL(database, true).String()
}

// ConnStringAs returns a URL connecting as user with password to database.
func (i *Instance) ConnStringAs(user, password, database string) string {
	u := i.connURL(database, false)
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

func (i *Instance) connURL(database string, withPassword bool) *url.URL {
	u := &url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(Host, strconv.Itoa(i.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	if withPassword && i.cfg.Password != "" {
		u.User = url.UserPassword(SuperuserDefault, i.cfg.Password)
	} else {
		u.User = url.User(SuperuserDefault)
	}
	return u
}

// String describes the instance without secrets.
func (i *Instance) String() string {
	return fmt.Sprintf("%s (%s)", i.cfg.Name, Redact(i.ConnString("postgres")))
}

// LogValue keeps the password out of structured logs.
func (i *Instance) LogValue() slog.Value { return slog.StringValue(i.String()) }

// Redact returns a connection string, in either of libpq's forms, with
// every password it carries replaced by "xxxxx": a URL's userinfo and its
// password parameter, or the password keyword. A string that cannot be
// parsed comes back as "[unparsable connection string]", since no part of
// it can be shown safely.
func Redact(connString string) string { return connstring.Redact(connString) }

// Connect opens a connection as the superuser to database.
func (i *Instance) Connect(ctx context.Context, database string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, i.ConnString(database))
	if err != nil {
		return nil, fmt.Errorf("localpg: %s: connect to %q: %w", i.cfg.Name, database, err)
	}
	return conn, nil
}

// CreateDatabase creates a database owned by the superuser.
func (i *Instance) CreateDatabase(ctx context.Context, name string) error {
	conn, err := i.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("localpg: %s: create database %q: %w", i.cfg.Name, name, err)
	}
	return nil
}

// Command returns a command running the named PostgreSQL program (such as
// pg_dump or pg_basebackup) from BinDir as the user the server runs as, so
// that files it writes belong to the server.
func (i *Instance) Command(ctx context.Context, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(i.binDir, program), args...)
	i.as.apply(cmd)
	return cmd
}
