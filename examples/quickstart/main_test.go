package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstart runs the README's first command as a user would and
// checks what it reports.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, true); err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if rep.Located != "pg-a" || len(rep.Usage["pg-a"]) != 1 || len(rep.Usage["pg-b"]) != 0 {
		t.Fatalf("report: %+v", rep)
	}
	if u := rep.Usage["pg-a"][0]; u.Database != "acme" || u.Tables != 12 || u.Files == 0 {
		t.Errorf("usage of acme: %+v, want 12 tables", u)
	}
	if bytes.Contains(out.Bytes(), []byte("quickstart-")) {
		t.Error("the report shows a password")
	}
}
