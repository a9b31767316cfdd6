package main

import (
	"encoding/json"
	"errors"
	"io"
	"text/tabwriter"
	"time"
)

// writeJSON prints v as the one JSON document of a --json run.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeDoc prints doc, with err's message as "error" if err is set, as
// the JSON document of a run, and returns err.
func writeDoc(inv *invocation, doc map[string]any, err error) error {
	if err != nil {
		doc["error"] = err.Error()
	}
	return errors.Join(err, writeJSON(inv.stdout, doc))
}

// newTable returns a writer of aligned columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// ms is a duration in milliseconds, for JSON: readable by any tool
// without knowing Go's nanoseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// orDash is s, or "-" for a table cell with nothing to say.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
