package drain_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
)

// The fleet of the migration the library is modelled on.
const (
	scaleInstances = 3000
	scaleTenants   = 4_000_000
	scaleSpares    = 2
)

// syntheticFleet is a deterministic fleet of instances (plus spares,
// empty) holding tenants skewed like real ones: every database has the
// ~300 relation files of an empty PostgreSQL database and ~7.5 MiB;
// table counts and data are log-normal, so most tenants are tiny and a
// few hold tens of GiB; activity grows with size. Every instance's limits
// are 30% over the average instance's usage.
func syntheticFleet(instances, tenants, spares int) *drain.Snapshot {
	rng := rand.New(rand.NewPCG(4_000_000, 3000))
	s := &drain.Snapshot{Instances: make([]drain.InstanceUsage, instances+spares)}
	counts := make([]int, instances)
	for i := range counts {
		counts[i] = tenants / instances
		if i < tenants%instances {
			counts[i]++
		}
	}
	for i := 0; i+1 < instances; i += 2 { // up to 10% more or fewer, in pairs that keep the total
		d := rng.IntN(counts[i] / 10)
		counts[i], counts[i+1] = counts[i]+d, counts[i+1]-d
	}
	next := 0
	var files, bytes int64
	for i, n := range counts {
		ts := make([]drain.TenantUsage, n)
		for j := range ts {
			data := int64(math.Min(math.Exp(14+2.5*rng.NormFloat64()), 200<<30))
			tables := 1 + int64(math.Exp(1.5+rng.NormFloat64()))
			id := "t" + strconv.Itoa(next)
			ts[j] = drain.TenantUsage{ID: id, Usage: fleet.Usage{
				Database: id, // shares the ID's bytes
				Bytes:    7_500_000 + data,
				Files:    300 + 4*tables + data>>30,
				Tables:   tables,
				TPS:      math.Exp(-1+2*rng.NormFloat64()) * (1 + float64(data)/(1<<30)),
			}}
			files += ts[j].Files
			bytes += ts[j].Bytes
			next++
		}
		s.Instances[i] = drain.InstanceUsage{Instance: fleet.Instance{ID: fmt.Sprintf("pg%04d", i)}, Tenants: ts}
	}
	for i := range spares {
		s.Instances[instances+i].Instance.ID = fmt.Sprintf("spare%d", i)
	}
	// The same limits everywhere, from the fleet's totals.
	limits := fleet.Limits{
		MaxFiles:   files / int64(instances) * 13 / 10,
		MaxBytes:   bytes / int64(instances) * 13 / 10,
		MaxTenants: int64(tenants / instances * 13 / 10),
	}
	for i := range s.Instances {
		s.Instances[i].Instance.Limits = limits
	}
	return s
}

// heapPeak samples the live heap (runtime.ReadMemStats) every 20 ms
// until stopped; peak returns the highest value seen so far.
func heapPeak() (peak func() uint64, stop func()) {
	done := make(chan struct{})
	var highest atomic.Uint64
	var wg sync.WaitGroup
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for {
			old := highest.Load()
			if ms.HeapAlloc <= old || highest.CompareAndSwap(old, ms.HeapAlloc) {
				return
			}
		}
	}
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	peak = func() uint64 { sample(); return highest.Load() }
	return peak, func() { close(done); wg.Wait() }
}

// BenchmarkPlanAtFleetScale plans on a synthetic fleet of 3,000 instances
// and 4 million tenants (issue 6's goal: under 30 s and 2 GB). Its
// baselines, in the same run: building the snapshot, and one pass summing
// every tenant's usage, which every plan pays once.
//
//	go test -run '^$' -bench PlanAtFleetScale -benchtime 1x ./drain
func BenchmarkPlanAtFleetScale(b *testing.B) {
	runtime.GC()
	peak, stop := heapPeak()
	defer stop()
	start := time.Now()
	snap := syntheticFleet(scaleInstances, scaleTenants, scaleSpares)
	built := time.Since(start)
	reportPeak := func(b *testing.B) { b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB") }
	report := func(b *testing.B, what string, moves int) {
		b.ReportMetric(float64(moves), "moves")
		reportPeak(b)
		b.Logf("%s: %d moves; snapshot built in %s", what, moves, built)
	}

	b.Run("baseline=snapshot-build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			syntheticFleet(scaleInstances, scaleTenants, scaleSpares)
		}
		reportPeak(b)
	})
	b.Run("baseline=sum-usage", func(b *testing.B) {
		for b.Loop() {
			var t drain.Totals
			for i := range snap.Instances {
				u := snap.Instances[i].Totals()
				t.Files += u.Files
			}
		}
		reportPeak(b)
	})
	src := snap.Instances[0]
	b.Run("drain", func(b *testing.B) {
		b.ReportAllocs()
		th := drain.Threshold{MaxFiles: src.Totals().Files * 6 / 10}
		var p *drain.Plan
		for b.Loop() {
			var err error
			if p, err = drain.PlanDrain(snap, src.Instance.ID, th, nil); err != nil {
				b.Fatal(err)
			}
		}
		report(b, fmt.Sprintf("drain %s to %s", src.Instance.ID, th), len(p.Moves))
	})
	b.Run("refill", func(b *testing.B) {
		b.ReportAllocs()
		var p *drain.Plan
		for b.Loop() {
			var err error
			if p, err = drain.PlanRefill(snap, "spare0", []string{"pg0001", "pg0002", "pg0003"}, drain.Threshold{}, nil); err != nil {
				b.Fatal(err)
			}
		}
		report(b, "refill spare0 from 3 instances", len(p.Moves))
	})
	runtime.KeepAlive(snap)
}
