package logical

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/daisychain-db/daisychain/replica"
)

// Provider starts logical replication streams of one database. The zero
// value is ready to use; do not copy or change a Provider after first
// use.
type Provider struct {
	// BinDir is the directory of pg_dump and pg_restore, of a version at
	// least the source's. Default: found on PATH, else the newest
	// /usr/lib/postgresql/*/bin.
	BinDir string
	// Jobs is how many parallel jobs pg_restore uses to build indexes and
	// constraints after the initial copy. Default: the number of CPUs, at
	// most 8.
	Jobs int
	// MaintenanceWorkMem is the target's maintenance_work_mem for
	// building indexes after the initial copy, per job. Default "256MB".
	MaintenanceWorkMem string
	// CopyJobs is how many sessions copy the initial data in parallel,
	// each a connection to the source (in a transaction that holds the
	// slot's snapshot until the copy ends) and one to the target.
	// Default CopyJobsDefault.
	CopyJobs int
	// CopyRangeSize is the size of the ranges (of its blocks) a table
	// larger than it is copied in, in parallel. A table copied whole is
	// copied with COPY FREEZE, which ranges cannot use: smaller ranges
	// pay where the servers have cores to spare. Default
	// CopyRangeSizeDefault (1 GiB: on 2 CPUs a 770 MB table copied whole
	// was ready sooner than in 64 MB ranges by 4 sessions).
	CopyRangeSize int64
	// PollInterval is how often a stream's background work looks at the
	// copy and at the retained WAL. Default 250ms.
	PollInterval time.Duration
	// SenderGrace is how long WaitFor goes on while no WAL sender serves
	// the stream's slot before it fails with replica.ErrNotStreaming: a
	// subscriber whose source restarted reconnects within
	// wal_retrieve_retry_interval (5 s by default). Default
	// SenderGraceDefault.
	SenderGrace time.Duration
	// ReadyTimeout bounds how long a stream's Ready waits for the stream
	// to be connected. Default ReadyTimeoutDefault.
	ReadyTimeout time.Duration

	// The stream options below hold for every stream whose Spec leaves
	// them unset (a cutover builds its Specs itself: these are how its
	// user sets them); see replica.Options for each.

	// LongTransactionLimit is replica.Options.LongTransactionLimit for a
	// Spec whose is 0; it must not be negative. Default
	// replica.LongTransactionLimitDefault.
	LongTransactionLimit time.Duration
	// WaitForLongTransactions is replica.Options.WaitForLongTransactions
	// for every stream. Default false: preflight refuses long
	// transactions.
	WaitForLongTransactions bool
	// AllowUnboundedSlotWAL is replica.Options.AllowUnboundedSlotWAL for
	// every stream. Default false: preflight refuses a source whose
	// max_slot_wal_keep_size is -1.
	AllowUnboundedSlotWAL bool

	// binDirOnce finds BinDir's default once: it looks through PATH and
	// runs pg_config.
	binDirOnce sync.Once
	binDir     string
	binDirErr  error
	// sweepOnce removes the dumps that dead processes left (see
	// dumpdir.go) on the first Start or Abort: later ones are this
	// process's, which removes them itself.
	sweepOnce sync.Once
}

// Defaults of the Provider's fields.
const (
	SenderGraceDefault   = 10 * time.Second
	ReadyTimeoutDefault  = 30 * time.Second
	CopyJobsDefault      = 4
	CopyRangeSizeDefault = 1 << 30
)

var _ replica.Provider = (*Provider)(nil)

// env is everything a stream's operations need to know, resolved from a
// Spec.
type env struct {
	spec     replica.Spec
	name     string // publication, slot and subscription
	binDir   string
	jobs     int
	copyJobs int
	rangeSz  int64
	mwm      string
	poll     time.Duration
	grace    time.Duration // Provider.SenderGrace
	ready    time.Duration // Provider.ReadyTimeout
	maxWAL   int64         // <= 0: no guard
	srcAdmin conninfo      // the database Spec.Source names (never the tenant database)
	srcDB    conninfo      // the source tenant database
	srcSub   conninfo      // the source tenant database as the target server reaches it
	tgtAdmin conninfo      // the target server's maintenance database
	tgtDB    conninfo      // the target tenant database
	log      *slog.Logger
	// reverse: the env of a stream's reverse (see reverse.go), whose
	// source is the stream's target database.
	reverse bool

	srcMajor, tgtMajor int
}

// validate checks the Provider's fields that have no safe default.
func (p *Provider) validate() error {
	var errs []error
	if p.CopyJobs < 0 {
		errs = append(errs, fmt.Errorf("%w: Provider.CopyJobs %d is negative", replica.ErrInvalidSpec, p.CopyJobs))
	}
	if p.CopyRangeSize < 0 {
		errs = append(errs, fmt.Errorf("%w: Provider.CopyRangeSize %d is negative", replica.ErrInvalidSpec, p.CopyRangeSize))
	}
	if p.LongTransactionLimit < 0 {
		errs = append(errs, fmt.Errorf("%w: Provider.LongTransactionLimit %s is negative", replica.ErrInvalidSpec, p.LongTransactionLimit))
	}
	if strings.ContainsAny(p.MaintenanceWorkMem, " '\\") {
		errs = append(errs, fmt.Errorf("%w: Provider.MaintenanceWorkMem %q is not a size", replica.ErrInvalidSpec, p.MaintenanceWorkMem))
	}
	return errors.Join(errs...)
}

// env resolves spec: the Provider's stream options fill what spec leaves
// unset, and every default is applied.
func (p *Provider) env(spec replica.Spec) (*env, error) {
	if err := errors.Join(spec.Validate(), p.validate()); err != nil {
		return nil, err
	}
	if spec.LongTransactionLimit == 0 {
		spec.LongTransactionLimit = p.LongTransactionLimit
	}
	spec.WaitForLongTransactions = spec.WaitForLongTransactions || p.WaitForLongTransactions
	spec.AllowUnboundedSlotWAL = spec.AllowUnboundedSlotWAL || p.AllowUnboundedSlotWAL
	p.binDirOnce.Do(func() { p.binDir, p.binDirErr = findBinDir(p.BinDir) })
	binDir, err := p.binDir, p.binDirErr
	if err != nil {
		return nil, err
	}
	src, err := parseConninfo(spec.Source)
	if err != nil {
		return nil, fmt.Errorf("%w: Source: %v", replica.ErrInvalidSpec, err)
	}
	tgt, err := parseConninfo(spec.Target)
	if err != nil {
		return nil, fmt.Errorf("%w: Target: %v", replica.ErrInvalidSpec, err)
	}
	sub := src
	if spec.SourceForTarget != "" {
		if sub, err = parseConninfo(spec.SourceForTarget); err != nil {
			return nil, fmt.Errorf("%w: SourceForTarget: %v", replica.ErrInvalidSpec, err)
		}
	}
	e := &env{
		spec: spec, name: objectName(spec.ID), binDir: binDir, jobs: p.Jobs, copyJobs: p.CopyJobs, rangeSz: p.CopyRangeSize, mwm: p.MaintenanceWorkMem, poll: p.PollInterval,
		srcAdmin: src,
		srcDB:    src.With("dbname", spec.SourceDatabase),
		srcSub:   withCredentials(sub.With("dbname", spec.SourceDatabase)),
		tgtAdmin: tgt,
		tgtDB:    tgt.With("dbname", spec.TargetDatabase),
		log:      spec.Logger,
	}
	// The admin database must not be the tenant database: a fence that
	// refuses connections to the tenant database must not stop the
	// stream from reading the slot or taking a barrier.
	if db := e.srcAdmin["dbname"]; db == "" || db == spec.SourceDatabase {
		e.srcAdmin = e.srcAdmin.With("dbname", "postgres")
		if spec.SourceDatabase == "postgres" {
			e.srcAdmin = e.srcAdmin.With("dbname", "template1")
		}
	}
	if e.tgtAdmin["dbname"] == "" {
		e.tgtAdmin = e.tgtAdmin.With("dbname", "postgres")
	}
	if e.jobs <= 0 {
		e.jobs = min(runtime.NumCPU(), 8)
	}
	if e.copyJobs == 0 {
		e.copyJobs = CopyJobsDefault
	}
	if e.rangeSz == 0 {
		e.rangeSz = CopyRangeSizeDefault
	}
	if e.mwm == "" {
		e.mwm = "256MB"
	}
	if e.poll <= 0 {
		e.poll = 250 * time.Millisecond
	}
	if e.grace = p.SenderGrace; e.grace <= 0 {
		e.grace = SenderGraceDefault
	}
	if e.ready = p.ReadyTimeout; e.ready <= 0 {
		e.ready = ReadyTimeoutDefault
	}
	switch {
	case spec.MaxRetainedWAL == 0:
		e.maxWAL = replica.MaxRetainedWALDefault
	case spec.MaxRetainedWAL > 0:
		e.maxWAL = spec.MaxRetainedWAL
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("stream", spec.ID)
	return e, nil
}

// Preflight implements replica.Provider: it checks everything a stream
// needs and reports every problem, changing nothing. The error is only
// for an invalid spec; problems are in the report.
func (p *Provider) Preflight(ctx context.Context, spec replica.Spec) (*replica.PreflightReport, error) {
	e, err := p.env(spec)
	if err != nil {
		return nil, err
	}
	r, _ := e.preflight(ctx)
	return r, nil
}

// Start implements replica.Provider. A new stream: preflight, schema
// (tables and primary keys) restored into the target database (created
// when absent), publication and slot on the source, subscription on the
// target; the initial copy, then the remaining indexes and constraints,
// go on in the background. If it fails, everything it created is removed.
// With the ID of an existing stream, it checks what exists, creates what
// is missing, and goes on.
func (p *Provider) Start(ctx context.Context, spec replica.Spec) (replica.Stream, error) {
	e, err := p.env(spec)
	if err != nil {
		return nil, err
	}
	report, f := e.preflight(ctx)
	if err := report.Err(); err != nil {
		return nil, err
	}
	p.sweepDumpDirs(e.log)
	fresh := f.marker == nil
	s, err := e.start(ctx, f)
	if err != nil {
		if fresh && !errors.Is(err, errCrashed) {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if cerr := e.cleanup(cctx, true, nil); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up after the failed start: %w", cerr))
			}
		}
		return nil, fmt.Errorf("logical: start %s: %w", spec, err)
	}
	return s, nil
}

// Abort removes the replication objects of the stream with spec's ID
// (and its target database, if the stream created it) without a Stream
// handle: for a stream that cannot be resumed.
func (p *Provider) Abort(ctx context.Context, spec replica.Spec) error {
	e, err := p.env(spec)
	if err != nil {
		return err
	}
	p.sweepDumpDirs(e.log)
	return e.cleanup(ctx, true, nil)
}

// Finish finishes the stream with spec's ID without a Stream handle (for
// a process that resumes after the switch): its subscription, slots and
// publication are dropped and the target database is kept. The target
// must be complete (the stream reached PhaseStreaming), else it is
// replica.ErrNotReady. A stream that is gone already is no error.
func (p *Provider) Finish(ctx context.Context, spec replica.Spec) error {
	e, err := p.env(spec)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, e.tgtAdmin, "target")
	if err != nil {
		return fmt.Errorf("logical: finish %s: %w", spec, err)
	}
	m, _, err := e.readMarker(ctx, conn)
	closeConn(conn)
	if err != nil {
		return fmt.Errorf("logical: finish %s: %w", spec, err)
	}
	if m != nil && m.Phase == markAborted {
		return fmt.Errorf("logical: finish %s: %w: the WAL guard stopped the stream and the target is incomplete or stale: Abort it",
			spec, replica.ErrWALLimit)
	}
	if m != nil && m.Phase != markComplete {
		return fmt.Errorf("logical: finish %s: %w (the target's schema is not complete: resume the stream with Start and wait for it, or Abort)",
			spec, replica.ErrNotReady)
	}
	if err := e.cleanup(ctx, false, nil); err != nil {
		return fmt.Errorf("logical: finish %s: %w", spec, err)
	}
	return nil
}
