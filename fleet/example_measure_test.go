package fleet_test

import (
	"context"
	"fmt"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
)

func ExampleMeasureInstance() {
	ctx := context.Background()
	inst, err := localpg.Start(ctx, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inst.Close()
	admin := fleet.Instance{ID: "pg", Admin: inst.ConnString("postgres")}
	// One connection, two queries: every database on the instance.
	m, err := fleet.MeasureInstance(ctx, admin, &fleet.UsageOpts{Interval: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Files, "connections:", m.Connections)
	for _, u := range m.Databases {
		fmt.Println(u.Database, u.Files > 0, u.CountsAgainstLimits())
	}
	// Output:
	// data_directory connections: 1
	// postgres true false
	// template0 true false
	// template1 true false
}
