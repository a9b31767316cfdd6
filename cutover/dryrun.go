package cutover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// Rates the RateModel takes for a part no measured run informs: this
// library's measurements on a 2-core machine with local disks (see the
// replica/logical and cutover benchmarks). Rehearse (Mover.Rehearse) to
// measure your own.
const (
	// CopyRateEstimate is bytes per second of the stream's initial copy,
	// and of its index build.
	CopyRateEstimate = 40 << 20
	// VerifyCountsRateEstimate is bytes per second of VerifyCounts, on
	// both sides at once.
	VerifyCountsRateEstimate = 400 << 20
	// VerifyChecksumsRateEstimate is bytes per second of VerifyChecksums.
	VerifyChecksumsRateEstimate = 60 << 20
)

// DryRunReport is what a move or a conversion would do, from a dry run
// that changed nothing: its steps, its estimates and the problems its
// preflight found. (The plan a run journals, and drain.Plan, the moves a
// drain would make, are other things.)
type DryRunReport struct {
	Move, Tenant, Database, Source, Target string
	// Tenants the window would hold: 1 for a move.
	Tenants int
	// Steps that would run, in order: the table the run runs.
	Steps []Step
	// Bytes and Files of the tenant's database on the source; for a
	// conversion, Bytes of the whole instance (Files is not measured).
	Bytes, Files int64
	// Estimate is each step's estimated time and the total, with their
	// ranges and the measured runs they rest on (Estimate.Basis).
	Estimate *Estimate
	// CopyEstimate is the time the copy would take (the stream and the
	// catch-up steps), WindowEstimate the window's, against
	// WindowBudget, and VerifyEstimate the verification's after the
	// switch: parts of Estimate.
	CopyEstimate                 time.Duration
	WindowEstimate, WindowBudget time.Duration
	VerifyEstimate               time.Duration
	Verify                       replica.VerifyLevel
	// Problems preflight found; the move would be refused while there
	// are any.
	Problems []string
}

// String is a readable report.
func (p *DryRunReport) String() string {
	var b strings.Builder
	if p.Tenant == "" { // a conversion
		fmt.Fprintf(&b, "dry run: convert instance %s (%d tenants, %d bytes) onto %s\n", p.Source, p.Tenants, p.Bytes, p.Target)
	} else {
		fmt.Fprintf(&b, "dry run: move tenant %s (database %q, %d bytes, %d files) from %s to %s\n",
			p.Tenant, p.Database, p.Bytes, p.Files, p.Source, p.Target)
	}
	if e := p.Estimate; e != nil {
		fmt.Fprintf(&b, "  about %s (%s to %s): copy %s, window %s (%s to %s, budget %s), verify %s %s\n",
			round(e.Total), round(e.Low), round(e.High), round(p.CopyEstimate), round(e.Window), round(e.WindowLow),
			round(e.WindowHigh), p.WindowBudget, p.Verify, round(p.VerifyEstimate))
		fmt.Fprintf(&b, "  basis: %s\n", e.Basis)
	}
	steps := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		steps[i] = string(s)
	}
	fmt.Fprintf(&b, "  steps: %s\n", strings.Join(steps, " -> "))
	if len(p.Problems) == 0 {
		b.WriteString("  preflight: ok\n")
	}
	for _, pr := range p.Problems {
		fmt.Fprintf(&b, "  problem: %s\n", pr)
	}
	return b.String()
}

// DryRun runs the preflight and returns what the move would do, with
// estimates of the copy and the window, changing nothing and journaling
// nothing. A request
// that names no known tenant or instance is an error; problems a move
// would be refused for are in DryRunReport.Problems.
func (m *Mover) DryRun(ctx context.Context, req Request) (*DryRunReport, error) {
	r, err := m.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	p := r.dryRun(ctx)
	p.Database = r.p.Database
	usage, err := fleet.MeasureUsage(ctx, r.src, &fleet.UsageOpts{Databases: []string{r.p.Database}, Interval: -1})
	if err != nil {
		p.Problems = append(p.Problems, fmt.Sprintf("measure the tenant: %v", err))
	} else {
		p.Bytes, p.Files = usage[0].Bytes, usage[0].Files // if the shape cannot be read
	}
	r.dryRunEstimate(ctx, p)
	return p, nil
}

// DryRunConvert is DryRun for a Convert: the preflight of every tenant
// and of the replica, the steps, and estimates of the copy (the whole
// instance's bytes) and the window, changing nothing and journaling
// nothing.
func (m *Mover) DryRunConvert(ctx context.Context, req ConvertRequest) (*DryRunReport, error) {
	r, err := m.prepareConvert(ctx, req)
	if err != nil {
		return nil, err
	}
	p := r.dryRun(ctx)
	p.Verify = replica.VerifyOff // a physical copy is the source's own pages
	r.dryRunEstimate(ctx, p)
	return p, nil
}

// dryRunEstimate measures what the run would move (a tenant's write rate
// sampled for shapeSampleDefault) and estimates it from the rate model.
func (r *run) dryRunEstimate(ctx context.Context, p *DryRunReport) {
	shape, err := r.readShape(ctx, shapeSampleDefault)
	if err != nil {
		p.Problems = append(p.Problems, fmt.Sprintf("measure what the run would move: %v", err))
		return
	}
	p.Bytes = shape.Bytes
	model, err := r.m.RateModel(ctx, r.p.source(), r.p.destination(), r.p.convert())
	if err != nil {
		p.Problems = append(p.Problems, fmt.Sprintf("rate model: %v", err))
		return
	}
	e := r.estimate(model, shape.Shape)
	p.Estimate = e
	p.CopyEstimate = e.Step(r.copy.startStep()).Estimate + e.Step(StepCatchUp).Estimate
	p.WindowEstimate = e.Window
	p.VerifyEstimate = e.Step(StepVerify).Estimate
}

// dryRun is what both dry runs share: the steps of the run's table and
// the preflight's problems.
func (r *run) dryRun(ctx context.Context) *DryRunReport {
	p := &DryRunReport{Move: r.p.Move, Tenant: r.p.Tenant, Source: r.p.source(), Target: r.p.destination(),
		Tenants: len(r.tenants), WindowBudget: r.m.cfg.WindowBudget, Verify: r.p.Verify}
	before, window, after := r.table()
	for _, part := range [][]stepDef{before, window, after} {
		for _, s := range part {
			p.Steps = append(p.Steps, s.step)
		}
	}
	p.Problems = r.preflightProblems(ctx)
	return p
}
