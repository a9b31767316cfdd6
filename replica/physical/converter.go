package physical

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daisychain-db/daisychain/internal/pgbin"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
)

// PollIntervalDefault is how often WaitFor looks at the replica's replay
// position at most when Converter.PollInterval is 0.
const PollIntervalDefault = 20 * time.Millisecond

// Converter builds local replicas of whole instances: streaming standbys
// made by pg_basebackup and run by localpg on this machine, promoted on
// cutover. The zero value is ready to use; do not copy a Converter after
// first use.
type Converter struct {
	// Replica configures each replica's localpg instance (BinDir,
	// BaseDir, OSUser, Settings, Fsync, StartTimeout, Logger; see
	// localpg.Config for their defaults). Name defaults to the slot name
	// (see the package documentation). Password is ignored: the replica's
	// roles are copies of the source's, so it gets the password of
	// Source. Settings below the source's for the parameters a standby
	// needs at least as high as its primary (max_connections,
	// max_worker_processes, max_wal_senders, max_prepared_transactions,
	// max_locks_per_transaction) are raised to the source's.
	Replica localpg.Config
	// SpreadCheckpoint lets pg_basebackup wait for a spread checkpoint on
	// the source before it copies (--checkpoint=spread), which can take
	// checkpoint_timeout. Default false: --checkpoint=fast, the copy
	// starts at once at the cost of a burst of writes on the source.
	SpreadCheckpoint bool
	// MaxRate caps pg_basebackup's transfer rate to protect the source's
	// IO (its --max-rate: "100M", "500k"). Default "": unlimited.
	MaxRate string
	// PollInterval bounds how often WaitFor looks at the replica's replay
	// position. Default PollIntervalDefault.
	PollInterval time.Duration
	// AllowUnboundedSlotWAL lets a conversion start on a source whose
	// max_slot_wal_keep_size is -1 (unlimited). Without it, preflight
	// refuses such a source: a replica that stops (or a process that dies
	// and leaves its slot) would make the source keep WAL until its disk
	// is full. With a bound, the source invalidates the slot instead and
	// the conversion fails with replica.ErrSlotLost.
	AllowUnboundedSlotWAL bool

	mu          sync.Mutex
	conversions map[string]*Conversion // by ID, until aborted
	started     []*Conversion          // the same, in the order they started
}

var _ replica.Converter = (*Converter)(nil)

func (c *Converter) validate() error {
	if c.MaxRate != "" && !validRate(c.MaxRate) {
		return fmt.Errorf("%w: Converter.MaxRate %q is not a rate such as 100M or 500k", replica.ErrInvalidSpec, c.MaxRate)
	}
	if c.PollInterval < 0 {
		return fmt.Errorf("%w: Converter.PollInterval %s is negative", replica.ErrInvalidSpec, c.PollInterval)
	}
	return nil
}

func validRate(s string) bool {
	n := strings.TrimRight(s, "kM")
	if len(s)-len(n) > 1 {
		return false
	}
	v, err := strconv.Atoi(n)
	return err == nil && v > 0
}

// Preflight checks that spec can be started, changing nothing. The error
// is for an invalid spec or configuration; problems are in the report.
func (c *Converter) Preflight(ctx context.Context, spec replica.ConvertSpec) (*replica.PreflightReport, error) {
	env, err := c.env(ctx, spec)
	if err != nil {
		return nil, err
	}
	r, _ := preflight(ctx, env.src, env.slot, env.localMajor, c.AllowUnboundedSlotWAL)
	return r, nil
}

// env is what a conversion needs, resolved from the spec and the
// Converter's configuration.
type env struct {
	spec       replica.ConvertSpec
	slot       string
	src        *source
	binDir     string
	localMajor int
	log        *slog.Logger
}

func (c *Converter) env(ctx context.Context, spec replica.ConvertSpec) (*env, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	e := &env{spec: spec, slot: slotName(spec.ID), log: spec.Logger}
	var err error
	if e.src, err = parseSource(spec.Source, e.slot); err != nil {
		return nil, err
	}
	if e.binDir, err = localpg.FindBinDir(c.Replica.BinDir); err != nil {
		return nil, err
	}
	if e.localMajor, err = pgbin.Major(ctx, e.binDir, "postgres"); err != nil {
		return nil, fmt.Errorf("physical: %w", err)
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("conversion", spec.ID)
	return e, nil
}

// Start implements replica.Converter. It runs the preflight (failing with
// replica.ErrPreflight and changing nothing when it finds problems),
// creates the conversion's physical replication slot on the source
// (reserving WAL from now on), and starts the base backup in the
// background. Start with the ID of a conversion of this Converter that
// was not aborted returns it.
func (c *Converter) Start(ctx context.Context, spec replica.ConvertSpec) (replica.Conversion, error) {
	// Starts are serialized, so one ID never gets two conversions.
	c.mu.Lock()
	defer c.mu.Unlock()
	if cv, ok := c.conversions[spec.ID]; ok {
		return cv, nil
	}
	e, err := c.env(ctx, spec)
	if err != nil {
		return nil, err
	}
	report, f := preflight(ctx, e.src, e.slot, e.localMajor, c.AllowUnboundedSlotWAL)
	if err := report.Err(); err != nil {
		return nil, fmt.Errorf("physical: %s: %w", spec, err)
	}
	for _, n := range report.Notes {
		e.log.Info("physical: " + n)
	}
	if !f.slotExists {
		if err := e.src.createSlot(ctx, e.slot); err != nil {
			return nil, fmt.Errorf("physical: %s: %w", spec, err)
		}
	}
	cv := newConversion(c, e, c.replicaConfig(e, f))
	if c.conversions == nil {
		c.conversions = map[string]*Conversion{}
	}
	c.conversions[spec.ID] = cv
	c.started = append(c.started, cv)
	return cv, nil
}

// Conversions returns the conversions this Converter started and did not
// abort, in the order they started. Their replicas, and the instances
// they became once promoted, are servers this process runs
// (Conversion.LocalInstance): their owner stops them when it is done
// with them, or they stop with the process.
func (c *Converter) Conversions() []*Conversion {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.started)
}

// replicaConfig is Converter.Replica completed for one conversion.
func (c *Converter) replicaConfig(e *env, f *facts) localpg.Config {
	cfg := c.Replica
	if cfg.Name == "" {
		cfg.Name = e.slot
	}
	cfg.BinDir = e.binDir
	cfg.Password = e.src.password
	cfg.Settings = maps.Clone(cfg.Settings)
	if cfg.Settings == nil {
		cfg.Settings = map[string]string{}
	}
	defaults := localpg.DefaultSettings()
	for _, name := range hotStandbyParams {
		want, ok := f.settings[name]
		if !ok {
			continue
		}
		have, set := cfg.Settings[name]
		if !set {
			have = defaults[name]
		}
		if v, err := strconv.ParseInt(have, 10, 64); err != nil || v < want {
			cfg.Settings[name] = strconv.FormatInt(want, 10)
		}
	}
	return cfg
}

// forget removes an aborted conversion, so that Start with its ID begins
// a new one.
func (c *Converter) forget(cv *Conversion) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conversions[cv.ID()] == cv {
		delete(c.conversions, cv.ID())
	}
	c.started = slices.DeleteFunc(c.started, func(s *Conversion) bool { return s == cv })
}

func (s *source) createSlot(ctx context.Context, slot string) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	// immediately_reserve: the source keeps WAL from now on, so the base
	// backup's WAL stream and the replica after it find every segment.
	if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, slot); err != nil {
		return fmt.Errorf("create replication slot %s on the source at %s: %w", slot, s.endpoint, err)
	}
	return nil
}
