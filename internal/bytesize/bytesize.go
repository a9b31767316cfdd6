// Package bytesize prints byte counts for people: fleet's limits and
// drain's plans show sizes the same way.
package bytesize

import "fmt"

// Format is n in IEC units with one decimal, exact below 1 KiB, as in
// "512 B" or "1.5 GiB".
func Format(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for (v >= unit || v <= -unit) && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[i])
}
