package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/replica"
)

// progressView draws a bar for each move's copy and catch-up, from the
// Mover's progress events (about once a second), and one for a drain's
// or a refill's moves, on stderr when it is a terminal. Several moves run
// at once in a drain, so it keeps one bar per move and step: mpb draws
// any number of them together. The estimates are the library's (copy and
// catch-up from the stream's pace, moves from the drain's), not the
// bar's.
type progressView struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*progressBar
	done sync.WaitGroup
}

type progressBar struct {
	bar *mpb.Bar
	// eta is the library's estimate, read by the bar's decorator while
	// it draws.
	eta atomic.Int64
	// total is the bar's last total, and most the largest lag seen (a
	// catch-up bar counts down from it). Only the goroutine of the bar's
	// events touches them.
	total, most int64
}

// startProgress shows the progress of mover's moves and, if runner is
// not nil, of its drains and refills, until stop is called. It shows
// nothing unless stderr is a terminal and neither --json nor
// --progress=false was given.
func startProgress(inv *invocation, mover *cutover.Mover, runner *drain.Runner) (stop func()) {
	if !inv.stderrTTY || inv.g.json || !inv.g.progress {
		return func() {}
	}
	v := &progressView{p: mpb.New(mpb.WithOutput(inv.stderr), mpb.WithWidth(40)), bars: map[string]*progressBar{}}
	moves, endMoves := mover.Subscribe(cutover.EventProgress, cutover.EventStepFinished, cutover.EventRolledBack)
	v.done.Go(func() {
		for e := range moves {
			v.move(e)
		}
	})
	endRuns := func() {}
	if runner != nil {
		var runs <-chan *drain.Event
		runs, endRuns = runner.Subscribe(drain.EventProgress)
		v.done.Go(func() {
			for e := range runs {
				v.run(e)
			}
		})
	}
	return func() {
		endMoves()
		endRuns()
		v.done.Wait()
		v.mu.Lock()
		for _, b := range v.bars {
			if !b.bar.Completed() {
				b.bar.Abort(false)
			}
		}
		v.mu.Unlock()
		v.p.Wait()
	}
}

// bar returns the bar of key, adding it with name if it is new. Each
// key's events come from one goroutine, so a key is added once; v.mu is
// not held while mpb adds the bar, since mpb may be drawing meanwhile.
func (v *progressView) bar(key, name string, total int64, counters decor.Decorator) *progressBar {
	v.mu.Lock()
	b, ok := v.bars[key]
	v.mu.Unlock()
	if ok {
		return b
	}
	b = &progressBar{}
	b.bar = v.p.AddBar(max(total, 1),
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(counters, decor.Any(func(decor.Statistics) string {
			if eta := time.Duration(b.eta.Load()); eta > 0 {
				return "  ETA " + eta.Round(time.Second).String()
			}
			return ""
		})))
	v.mu.Lock()
	v.bars[key] = b
	v.mu.Unlock()
	return b
}

func (v *progressView) setETA(b *progressBar, eta time.Duration) { b.eta.Store(int64(eta)) }

func (v *progressView) move(e *cutover.Event) {
	switch e.Kind {
	case cutover.EventProgress:
		pr := e.Progress
		if pr == nil {
			return
		}
		switch pr.Phase {
		case replica.PhaseSchema, replica.PhaseCopy:
			b := v.bar(e.Move+" copy", e.Tenant+" copy", pr.BytesTotal, decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"))
			b.total = max(pr.BytesTotal, 1)
			b.bar.SetTotal(b.total, false)
			b.bar.SetCurrent(pr.BytesCopied)
			v.setETA(b, pr.CopyETA)
		case replica.PhaseIndexes, replica.PhaseStreaming:
			if pr.BytesTotal > 0 {
				// A copy faster than the progress reports ends with
				// what it copied, not an empty bar.
				b := v.bar(e.Move+" copy", e.Tenant+" copy", pr.BytesTotal, decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"))
				b.total = pr.BytesTotal
				b.bar.SetTotal(b.total, false)
				b.bar.SetCurrent(min(pr.BytesCopied, pr.BytesTotal))
			}
			v.complete(e.Move + " copy")
			b := v.bar(e.Move+" catch-up", e.Tenant+" catch-up", pr.LagBytes, decor.Any(func(decor.Statistics) string { return "" }))
			b.most = max(b.most, pr.LagBytes, 1)
			b.total = b.most
			b.bar.SetTotal(b.most, false)
			b.bar.SetCurrent(b.most - pr.LagBytes)
			v.setETA(b, pr.CatchUpETA)
		}
	case cutover.EventStepFinished:
		if e.Step == cutover.StepCatchUp && e.Err == nil {
			v.complete(e.Move + " copy")
			v.complete(e.Move + " catch-up")
		}
	case cutover.EventRolledBack:
		v.abort(e.Move + " copy")
		v.abort(e.Move + " catch-up")
	}
}

func (v *progressView) run(e *drain.Event) {
	b := v.bar("run", "moves", int64(e.Total), decor.CountersNoUnit("%d / %d"))
	b.total = int64(max(e.Total, 1))
	b.bar.SetTotal(b.total, false)
	b.bar.SetCurrent(int64(e.Done + e.Failed))
	v.setETA(b, e.ETA)
	if e.Done+e.Failed >= e.Total {
		v.complete("run")
	}
}

func (v *progressView) complete(key string) {
	v.mu.Lock()
	b, ok := v.bars[key]
	v.mu.Unlock()
	if ok && !b.bar.Completed() {
		// Full, and no estimate left: the step is over.
		b.eta.Store(0)
		b.bar.SetCurrent(b.total)
		b.bar.SetTotal(b.total, true)
	}
}

func (v *progressView) abort(key string) {
	v.mu.Lock()
	b, ok := v.bars[key]
	v.mu.Unlock()
	if ok && !b.bar.Completed() {
		b.bar.Abort(false)
	}
}
