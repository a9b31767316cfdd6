package drain_test

import (
	"fmt"
	"log"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
)

// ExamplePlanChain is the dry run of a daisy chain over two full
// instances with one spare: what moves where, what each conversion takes
// along, and the most the spare ever holds. (Runner.DryRunChain also
// estimates each move and conversion from the Mover's rate models.)
func ExamplePlanChain() {
	limits := fleet.Limits{MaxFiles: 1000}
	tenant := func(id string, files int64) drain.TenantUsage {
		return drain.TenantUsage{ID: id, Usage: fleet.Usage{Database: id, Files: files, Bytes: files << 13}}
	}
	snap := &drain.Snapshot{Instances: []drain.InstanceUsage{
		{Instance: fleet.Instance{ID: "pg-1", Limits: limits}, Tenants: []drain.TenantUsage{tenant("a", 300), tenant("b", 250), tenant("c", 350)}},
		{Instance: fleet.Instance{ID: "pg-2", Limits: limits}, Tenants: []drain.TenantUsage{tenant("d", 400), tenant("e", 300), tenant("f", 200)}},
		{Instance: fleet.Instance{ID: "pg-s", Limits: limits}},
	}}
	plan, err := drain.PlanChain(snap, drain.ChainRequest{
		Instances: []string{"pg-1", "pg-2"},
		Spares:    []string{"pg-s"},
		Threshold: drain.Threshold{MaxFiles: 400}, // files an instance may hold when it is converted
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(plan)
	// Output:
	// stage 1: pg-1
	//   drain 2 tenants off pg-1:
	//     b: pg-1 -> pg-s (250 files, 2.0 MiB)
	//     a: pg-1 -> pg-s (300 files, 2.3 MiB)
	//   convert pg-1 into pg-1.1 with 1 tenants (350 files, 2.7 MiB)
	//   refill pg-1.1 with 2 tenants from the spares:
	//     b: pg-s -> pg-1.1 (250 files, 2.0 MiB)
	//     a: pg-s -> pg-1.1 (300 files, 2.3 MiB)
	// stage 2: pg-2
	//   drain 2 tenants off pg-2:
	//     f: pg-2 -> pg-s (200 files, 1.6 MiB)
	//     e: pg-2 -> pg-s (300 files, 2.3 MiB)
	//   convert pg-2 into pg-2.1 with 1 tenants (400 files, 3.1 MiB)
	//   refill pg-2.1 with 2 tenants from the spares:
	//     f: pg-s -> pg-2.1 (200 files, 1.6 MiB)
	//     e: pg-s -> pg-2.1 (300 files, 2.3 MiB)
	// spares hold at most 2 tenants (550 files)
}
