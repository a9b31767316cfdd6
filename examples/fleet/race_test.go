//go:build race

package main

import "github.com/daisychain-db/daisychain/cutover/cutovertest"

// quietSpell is the test's: under the race detector, the application's
// writers (this test process) can wait tens of milliseconds between
// taking a connection and using it, longer than the library's default
// quiet spell allows for, and the fence would end their statement, as
// cutovertest's Movers allow for (see cutovertest.RaceQuietSpell).
const quietSpell = cutovertest.RaceQuietSpell
