package localpg_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
)

// BenchmarkStart measures how long an instance takes until it accepts
// connections, from the cached template (initdb runs once per process,
// before the timer), against a fresh initdb as the baseline.
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	warm, err := localpg.Start(ctx, nil) // makes the template
	if err != nil {
		b.Fatal(err)
	}
	warm.Close()

	var initdb time.Duration
	{
		// Not b.TempDir: as root, the server's user must be able to enter it.
		dir, err := os.MkdirTemp("", "localpg-bench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		inst, err := localpg.Start(ctx, &localpg.Config{BaseDir: dir, Password: "baseline-" + time.Now().String()})
		if err != nil {
			b.Fatal(err)
		}
		initdb = time.Since(start)
		inst.Close()
	}

	b.ResetTimer()
	for b.Loop() {
		inst, err := localpg.Start(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := inst.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/start")
	b.ReportMetric(float64(initdb.Milliseconds()), "ms/start-with-initdb")
}
