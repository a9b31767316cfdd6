package localpg

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// runAs is the system user the server runs as; nil when the process is not
// root and everything runs as the current user.
type runAs struct {
	name     string
	uid, gid uint32
}

func lookupRunAs(name string) (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("localpg: running as root, so the server must run as "+
			"an unprivileged user, but system user %q does not exist: create it "+
			"(useradd --system %s; the postgresql package does) or set Config.OSUser: %w",
			name, name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return nil, fmt.Errorf("localpg: system user %q (uid %s) cannot run PostgreSQL: "+
			"set Config.OSUser to an unprivileged user", name, u.Uid)
	}
	return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// apply makes cmd run as the user. The parent-death signal makes the
// kernel stop the child if this process dies, so no server outlives it;
// Go sets it after switching credentials, which would otherwise clear it.
// The child leads its own process group, so Kill can end the server and
// all its backends at once.
func (r *runAs) apply(cmd *exec.Cmd) {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if r != nil {
		attr.Credential = &syscall.Credential{Uid: r.uid, Gid: r.gid}
	}
	cmd.SysProcAttr = attr
}

// chownTree gives the tree at root to the user.
func (r *runAs) chownTree(root string) error {
	if r == nil {
		return nil
	}
	return filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(r.uid), int(r.gid))
	})
}

func (r *runAs) String() string {
	if r == nil {
		return "current user"
	}
	return r.name
}

// checkReachable fails with an error naming the directory when the user
// cannot enter dir: as root, a private temporary directory (such as
// testing's TempDir) would otherwise show up as a puzzling initdb error.
func (r *runAs) checkReachable(dir string) error {
	if r == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("localpg: BaseDir: %w", err)
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		mode := info.Mode().Perm()
		if ok {
			enter := mode&0o001 != 0 ||
				(st.Uid == r.uid && mode&0o100 != 0) ||
				(st.Gid == r.gid && mode&0o010 != 0)
			if !enter {
				return fmt.Errorf("localpg: the server runs as system user %q, which cannot enter %s "+
					"(mode %04o, owner uid %d): set Config.BaseDir to a directory it can reach, such as %s, "+
					"or allow it in (chmod o+x %s)", r.name, p, mode, st.Uid, os.TempDir(), p)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
