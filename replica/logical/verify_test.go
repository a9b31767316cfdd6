package logical_test

import (
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
)

// Checksums compare values, not how each server prints them by default:
// source and target differ in every setting the text form of a row
// depends on.
func TestChecksumsIndependentOfServerSettings(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Settings: map[string]string{
		"timezone": "Asia/Tokyo", "intervalstyle": "sql_standard", "extra_float_digits": "1"}})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst", Settings: map[string]string{
		"timezone": "America/New_York", "datestyle": "SQL, DMY", "intervalstyle": "iso_8601",
		"bytea_output": "escape", "extra_float_digits": "0"}})
	localpgtest.CreateDatabase(t, src, "t")
	execSQL(t, src, "t",
		`CREATE TABLE vals (id int PRIMARY KEY, at timestamptz, d date, span interval, raw bytea, x float8)`,
		`INSERT INTO vals SELECT i, timestamptz '2025-03-30 01:30:00+00' + i * interval '37 minutes', date '2025-01-01' + i,
			i * interval '1 day 2 hours 3.5 seconds', sha256(i::text::bytea), 0.1 * i + 0.2 FROM generate_series(1, 200) i`)
	ctx := testCtx(t, 2*time.Minute)
	st := startStreaming(t, spec("settings", src, "t", dst, "t"))
	execSQL(t, src, "t", `UPDATE vals SET at = at + interval '1 hour', x = x / 3 WHERE id % 7 = 0`)
	catchUp(t, st, time.Minute)
	if err := st.Verify(ctx, replica.VerifyChecksums); err != nil {
		t.Fatal(err)
	}
	// The servers' own defaults do print the rows differently.
	const q = `SELECT sum(hashtext(v::text))::text FROM vals v`
	if queryValue[string](t, src, "t", q) == queryValue[string](t, dst, "t", q) {
		t.Error("the servers print the rows alike: the test proves nothing")
	}
}
