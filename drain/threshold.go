package drain

import (
	"fmt"
	"strings"
)

// Threshold is the level an instance must get to: at most MaxFiles
// files, MaxTenants tenants and MaxBytes bytes. Any combination may be
// set; zero leaves that dimension unconstrained, so the zero Threshold
// constrains nothing.
type Threshold struct {
	MaxFiles   int64 `json:"max_files,omitempty"`
	MaxTenants int64 `json:"max_tenants,omitempty"`
	MaxBytes   int64 `json:"max_bytes,omitempty"`
}

// Holds reports whether t is at or under every set field.
func (th Threshold) Holds(t Totals) bool {
	return (th.MaxFiles == 0 || t.Files <= th.MaxFiles) &&
		(th.MaxTenants == 0 || t.Tenants <= th.MaxTenants) &&
		(th.MaxBytes == 0 || t.Bytes <= th.MaxBytes)
}

// IsZero reports whether the threshold constrains nothing.
func (th Threshold) IsZero() bool { return th == Threshold{} }

// String lists the set fields, as in "files <= 900, bytes <= 1.0 GiB".
func (th Threshold) String() string {
	var parts []string
	if th.MaxFiles != 0 {
		parts = append(parts, fmt.Sprintf("files <= %d", th.MaxFiles))
	}
	if th.MaxTenants != 0 {
		parts = append(parts, fmt.Sprintf("tenants <= %d", th.MaxTenants))
	}
	if th.MaxBytes != 0 {
		parts = append(parts, "bytes <= "+formatBytes(th.MaxBytes))
	}
	if len(parts) == 0 {
		return "no threshold"
	}
	return strings.Join(parts, ", ")
}

func (th Threshold) validate(what string) error {
	if th.MaxFiles < 0 || th.MaxTenants < 0 || th.MaxBytes < 0 {
		return fmt.Errorf("%w: %s %+v has a negative field; zero means unconstrained", ErrInvalid, what, th)
	}
	return nil
}

// formatBytes is n in IEC units with one decimal, exact below 1 KiB.
func formatBytes(n int64) string {
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
