package drain_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/daisychain-db/daisychain/drain"
	"github.com/daisychain-db/daisychain/fleet"
)

// exampleFleet is three instances: pg-a too full to convert, two with
// room. In production, drain.Measure builds the snapshot from the catalog.
func exampleFleet() *drain.Snapshot {
	const mib = 1 << 20
	limits := fleet.Limits{MaxFiles: 3000, MaxTenants: 10, MaxBytes: 2048 * mib}
	t := func(id string, files, bytes int64, tps float64) drain.TenantUsage {
		return drain.TenantUsage{ID: id, Usage: fleet.Usage{Database: id, Files: files, Bytes: bytes, TPS: tps}}
	}
	return &drain.Snapshot{Instances: []drain.InstanceUsage{
		{Instance: fleet.Instance{ID: "pg-a", Limits: limits}, Tenants: []drain.TenantUsage{
			t("acme", 420, 310*mib, 12), t("globex", 305, 8*mib, 0.2), t("initech", 310, 12*mib, 3),
			t("hooli", 990, 900*mib, 40), t("umbrella", 305, 9*mib, 0.1), t("stark", 640, 200*mib, 5),
		}},
		{Instance: fleet.Instance{ID: "pg-b", Limits: limits}, Tenants: []drain.TenantUsage{
			t("wayne", 1900, 1200*mib, 30),
		}},
		{Instance: fleet.Instance{ID: "pg-c", Limits: limits}, Tenants: []drain.TenantUsage{
			t("wonka", 700, 300*mib, 8), t("tyrell", 350, 40*mib, 1),
		}},
	}}
}

// ExamplePlanDrain plans on a snapshot; Runner.DryRun measures the fleet
// and also estimates each move from the Mover's rate models.
func ExamplePlanDrain() {
	snap := exampleFleet()
	plan, err := drain.PlanDrain(snap, "pg-a", drain.Threshold{MaxFiles: 2000}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(plan)
	// Output:
	// drain pg-a until files <= 2000: 4 moves, 1340 files, 339.0 MiB
	//     #    tenant  from    to  files      bytes   tps
	//     1    globex  pg-a  pg-c    305    8.0 MiB   0.2
	//     2  umbrella  pg-a  pg-c    305    9.0 MiB   0.1
	//     3   initech  pg-a  pg-c    310   12.0 MiB   3.0
	//     4      acme  pg-a  pg-b    420  310.0 MiB  12.0
	// usage before -> after:
	//   pg-a  tenants 6 -> 2 (max 10)  files 2970 -> 1630 (max 3000)  bytes 1.4 GiB -> 1.1 GiB (max 2.0 GiB)
	//   pg-b  tenants 1 -> 2 (max 10)  files 1900 -> 2320 (max 3000)  bytes 1.2 GiB -> 1.5 GiB (max 2.0 GiB)
	//   pg-c  tenants 2 -> 5 (max 10)  files 1050 -> 1970 (max 3000)  bytes 340.0 MiB -> 369.0 MiB (max 2.0 GiB)
}

func ExamplePlanRefill() {
	snap := exampleFleet()
	plan, err := drain.PlanRefill(snap, "pg-c", []string{"pg-a", "pg-b"}, drain.Threshold{MaxTenants: 4}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(plan)
	// Output:
	// refill pg-c from pg-a, pg-b up to tenants <= 4: 2 moves, 610 files, 17.0 MiB
	//     #    tenant  from    to  files    bytes  tps
	//     1    globex  pg-a  pg-c    305  8.0 MiB  0.2
	//     2  umbrella  pg-a  pg-c    305  9.0 MiB  0.1
	// usage before -> after:
	//   pg-c  tenants 2 -> 4 (max 10)  files 1050 -> 1660 (max 3000)  bytes 340.0 MiB -> 357.0 MiB (max 2.0 GiB)
	//   pg-a  tenants 6 -> 4 (max 10)  files 2970 -> 2360 (max 3000)  bytes 1.4 GiB -> 1.4 GiB (max 2.0 GiB)
}

func ExamplePlacementError() {
	snap := exampleFleet()
	_, err := drain.PlanDrain(snap, "pg-a", drain.Threshold{MaxTenants: 1}, &drain.DrainOpts{Exclude: []string{"pg-c"}})
	var pe *drain.PlacementError
	if errors.As(err, &pe) {
		for _, u := range pe.Unplaced {
			fmt.Println(u)
		}
	}
	// Output:
	// tenant acme (420 files, 310.0 MiB): fits nowhere; nearest is pg-b, where max_files would be exceeded (2820 + 420 > 3000)
	// tenant stark (640 files, 200.0 MiB): fits nowhere; nearest is pg-b, where max_files would be exceeded (2820 + 640 > 3000)
	// tenant hooli (990 files, 900.0 MiB): fits nowhere; nearest is pg-b, where max_files would be exceeded (2820 + 990 > 3000)
}
