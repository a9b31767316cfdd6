package localpg

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

const (
	// OSUserDefault is the system user the server runs as when the process
	// runs as root. Debian's postgresql packages create it.
	OSUserDefault = "postgres"

	// SuperuserDefault is the name of the bootstrap superuser.
	SuperuserDefault = "postgres"

	// StartTimeoutDefault bounds how long Start waits for the server to
	// accept connections.
	StartTimeoutDefault = 60 * time.Second
)

// DefaultSettings returns the postgresql.conf settings every instance
// gets before Config.Settings are applied: logical replication sized for
// dozens of concurrent tenant moves, and nothing that makes a test
// slower. The map is new on each call; changing it changes no instance.
func DefaultSettings() map[string]string {
	return map[string]string{
		"listen_addresses":                  "127.0.0.1",
		"wal_level":                         "logical",
		"max_connections":                   "200",
		"max_replication_slots":             "64",
		"max_wal_senders":                   "64",
		"max_worker_processes":              "96",
		"max_logical_replication_workers":   "64",
		"max_sync_workers_per_subscription": "4",
		// Before PostgreSQL 16 the logical replication launcher starts
		// the workers of new subscriptions at most once per this
		// interval (default 5s): every move after the first would wait
		// for it. See replica/logical's preflight note.
		"wal_retrieve_retry_interval": "100ms",
		// A bound on the WAL a stalled slot may keep, as production needs
		// (replica preflight refuses an unbounded one).
		"max_slot_wal_keep_size":       "16GB",
		"wal_sender_timeout":           "30s",
		"wal_receiver_status_interval": "1s",
		"shared_buffers":               "64MB",
		"dynamic_shared_memory_type":   "posix",
		"logging_collector":            "off",
		"log_line_prefix":              "%m [%p] %q%u@%d ",
		"log_min_messages":             "warning",
		"unix_socket_permissions":      "0777",
		"timezone":                     "UTC",
	}
}

// Config configures an instance. The zero value (or a nil *Config) is
// valid: every field has a documented default.
type Config struct {
	// Name identifies the instance in logs and errors. Default "pg".
	Name string

	// BinDir is the directory of the server binaries. Default: found by
	// FindBinDir (PATH, pg_config --bindir, newest /usr/lib/postgresql/*/bin).
	BinDir string

	// BaseDir is where the instance's temporary directory is created.
	// Default os.TempDir(). When running as root, OSUser must be able to
	// traverse it.
	BaseDir string

	// OSUser is the system user the server runs as when the process runs
	// as root. Default OSUserDefault. Ignored when not running as root.
	OSUser string

	// Password is the superuser's password. Default "": connections are
	// trusted. When set, TCP connections authenticate with SCRAM-SHA-256.
	Password string

	// Settings are extra postgresql.conf settings; they override
	// DefaultSettings. Keys must be plain parameter names.
	Settings map[string]string

	// Fsync keeps fsync and full_page_writes on. Default false: they are
	// off, which is safe for a server that is killed (the kernel keeps the
	// writes) but not for a machine that crashes: right for throwaway
	// instances.
	Fsync bool

	// Port is the TCP port. Default 0: a free port is chosen.
	Port int

	// StartTimeout bounds how long Start waits until the server accepts
	// connections. Default StartTimeoutDefault.
	StartTimeout time.Duration

	// Logger receives lifecycle messages (started, stopped). Default nil:
	// discarded.
	Logger *slog.Logger
}

var settingName = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)

func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.Name == "" {
		out.Name = "pg"
	}
	if out.BaseDir == "" {
		out.BaseDir = os.TempDir()
	}
	if out.OSUser == "" {
		out.OSUser = OSUserDefault
	}
	if out.StartTimeout == 0 {
		out.StartTimeout = StartTimeoutDefault
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

func (c *Config) validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("Port %d is out of range 0..65535", c.Port))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("StartTimeout %s is negative", c.StartTimeout))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Settings)) {
		if !settingName.MatchString(k) {
			errs = append(errs, fmt.Errorf("Settings key %q is not a parameter name", k))
		}
		if strings.ContainsAny(c.Settings[k], "\n\r") {
			errs = append(errs, fmt.Errorf("Settings[%q] contains a line break", k))
		}
	}
	if strings.ContainsAny(c.Name, "/\x00") {
		errs = append(errs, fmt.Errorf("Name %q contains '/' or NUL", c.Name))
	}
	if len(errs) > 0 {
		return fmt.Errorf("localpg: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// settings returns the postgresql.conf lines for this config, sorted so the
// file is stable.
func (c *Config) settings(port int, socketDir string) []string {
	all := DefaultSettings()
	if !c.Fsync {
		all["fsync"] = "off"
		all["full_page_writes"] = "off"
		all["synchronous_commit"] = "on"
	}
	all["port"] = fmt.Sprint(port)
	all["unix_socket_directories"] = socketDir
	maps.Copy(all, c.Settings)
	lines := make([]string, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		lines = append(lines, fmt.Sprintf("%s = '%s'", k, strings.ReplaceAll(all[k], "'", "''")))
	}
	return lines
}
