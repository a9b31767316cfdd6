package localpg

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// templates caches the template data directory per key for this process,
// so initdb runs once per process and configuration.
var templates sync.Map // key string -> *templateEntry

type templateEntry struct {
	once sync.Once
	dir  string
	err  error
}

// templateDir returns a data directory made by initdb for this binary and
// user, creating it on first use. Passwords are set per instance, after
// the copy, so one template serves every configuration. Templates are kept in
// baseDir under a name derived from the key, so later processes reuse
// them; a template is published by an atomic rename, so a reader never
// sees a half-written one.
func templateDir(binDir, baseDir string, as *runAs) (string, error) {
	key, err := templateKey(binDir, as)
	if err != nil {
		return "", err
	}
	v, _ := templates.LoadOrStore(key, &templateEntry{})
	e := v.(*templateEntry)
	e.once.Do(func() {
		e.dir, e.err = ensureTemplate(binDir, baseDir, as, key)
	})
	return e.dir, e.err
}

func templateKey(binDir string, as *runAs) (string, error) {
	info, err := os.Stat(filepath.Join(binDir, "postgres"))
	if err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	h := sha256.New()
	// The binary's identity (path, size, mtime) invalidates templates when
	// the server package is upgraded.
	fmt.Fprintf(h, "v2\x00%s\x00%d\x00%d\x00%d\x00%s", binDir, info.Size(),
		info.ModTime().UnixNano(), os.Geteuid(), as)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func ensureTemplate(binDir, baseDir string, as *runAs, key string) (string, error) {
	final := filepath.Join(baseDir, "localpg-template-"+key)
	if _, err := os.Stat(filepath.Join(final, "PG_VERSION")); err == nil {
		return final, nil
	}
	work, err := os.MkdirTemp(baseDir, "localpg-initdb-")
	if err != nil {
		return "", fmt.Errorf("localpg: template: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return "", fmt.Errorf("localpg: template: %w", err)
	}
	data := filepath.Join(work, "data")
	args := []string{"-D", data, "-U", SuperuserDefault, "-E", "UTF8", "--no-locale",
		"--no-sync", "--auth=trust"}
	if err := as.chownTree(work); err != nil {
		return "", fmt.Errorf("localpg: template: %w", err)
	}
	cmd := exec.Command(filepath.Join(binDir, "initdb"), args...)
	as.apply(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("localpg: initdb as %s failed: %w\n%s", as, err,
			strings.TrimSpace(string(out)))
	}
	if err := os.Rename(data, final); err != nil {
		// Another process published the same template first.
		if _, statErr := os.Stat(filepath.Join(final, "PG_VERSION")); statErr == nil {
			return final, nil
		}
		return "", fmt.Errorf("localpg: template: %w", err)
	}
	return final, nil
}

// copyTree copies the directory src to dst, keeping file modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			return copyFile(path, target, info.Mode().Perm())
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
