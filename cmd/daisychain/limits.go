package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/daisychain-db/daisychain/fleet"
)

// limitsSyntax is how a threshold or a level is written.
const limitsSyntax = "files=N,tenants=N,bytes=SIZE (any of them; SIZE as 500MiB, 10GB or 1048576)"

// parseLimits reads a threshold or a level such as
// "files=900,bytes=10GiB"; flag names the flag in errors.
func parseLimits(flag, s string) (fleet.Limits, error) {
	var l fleet.Limits
	if strings.TrimSpace(s) == "" {
		return l, usagef("--%s is empty: give %s", flag, limitsSyntax)
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || value == "" {
			return fleet.Limits{}, usagef("--%s %q: %q is not key=value: give %s", flag, s, part, limitsSyntax)
		}
		if seen[key] {
			return fleet.Limits{}, usagef("--%s %q: %s is given twice", flag, s, key)
		}
		seen[key] = true
		var n int64
		var err error
		switch key {
		case "files", "tenants":
			n, err = strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		case "bytes":
			n, err = parseSize(value)
		default:
			return fleet.Limits{}, usagef("--%s %q: unknown key %q: give %s", flag, s, key, limitsSyntax)
		}
		if err != nil || n <= 0 {
			return fleet.Limits{}, usagef("--%s %q: %s=%s is not a positive number: give %s", flag, s, key, value, limitsSyntax)
		}
		switch key {
		case "files":
			l.MaxFiles = n
		case "tenants":
			l.MaxTenants = n
		case "bytes":
			l.MaxBytes = n
		}
	}
	return l, nil
}

// sizeUnits are the suffixes parseSize takes, in bytes.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// parseSize reads a byte count with an optional SI or IEC unit.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	return int64(v * mult), nil
}

// splitList reads a comma-separated list of IDs.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
