package localpg_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
)

// childEnv selects what TestChildProcess does when this test binary is
// run again as a child: "nonroot" or "orphan".
const childEnv = "LOCALPG_TEST_CHILD"

func itoa(n int) string { return strconv.Itoa(n) }

// TestChildProcess is the child's side; without childEnv it does nothing.
func TestChildProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return
	}
	ctx := context.Background()
	inst, err := localpg.Start(ctx, &localpg.Config{Name: mode})
	if err != nil {
		fmt.Println("START FAILED:", err)
		os.Exit(2)
	}
	switch mode {
	case "nonroot":
		conn, err := inst.Connect(ctx, "postgres")
		if err == nil {
			_, err = conn.Exec(ctx, "CREATE TABLE t (v int)")
			conn.Close(ctx)
		}
		if err != nil {
			fmt.Println("QUERY FAILED:", err)
		} else {
			fmt.Println("OK")
		}
		inst.Close()
	case "orphan":
		pid, _ := os.ReadFile(filepath.Join(inst.DataDir(), "postmaster.pid"))
		fmt.Printf("PID %s PORT %d DIR %s\n", strings.SplitN(string(pid), "\n", 2)[0], inst.Port(), inst.Dir())
		// Exit as a crash would: no Close, no cleanup.
		os.Exit(0)
	}
}

// runChild runs this test binary as a child in mode, as the given user
// (nil: the current one), and returns its output.
func runChild(t *testing.T, mode string, cred *syscall.Credential) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		// The build directory is private to root: give the other user a
		// copy it can execute.
		dir, err := os.MkdirTemp("", "localpg-child-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		copyBin := filepath.Join(dir, "localpg.test")
		in, _ := os.Open(bin)
		out, _ := os.OpenFile(copyBin, os.O_CREATE|os.O_WRONLY, 0o755)
		_, err = io.Copy(out, in)
		in.Close()
		if cerr := out.Close(); err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
		bin = copyBin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^TestChildProcess$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "TMPDIR="+os.TempDir())
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = os.TempDir()
	}
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestRunsAsNonRoot runs an instance from a process that is not root.
// Run as root, it re-runs itself as the postgres system user; run as
// another user, every test here already covers it.
func TestRunsAsNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: every other test runs as non-root")
	}
	u, err := user.Lookup(localpg.OSUserDefault)
	if err != nil {
		t.Fatalf("running as root, the %s system user is needed: %v", localpg.OSUserDefault, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	out := runChild(t, "nonroot", &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)})
	if !strings.Contains(out, "OK") {
		t.Fatalf("child as %s:\n%s", u.Username, out)
	}
}

// TestServerDiesWithProcess: a process that exits without closing its
// instance takes the server with it.
func TestServerDiesWithProcess(t *testing.T) {
	t.Parallel()
	out := runChild(t, "orphan", nil)
	var pid, port int
	var dir string
	if _, err := fmt.Sscanf(out[strings.Index(out, "PID "):], "PID %d PORT %d DIR %s", &pid, &port, &dir); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) || dials(port) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postmaster %d (port %d) outlived its process by 20 s", pid, port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// A zombie waiting for its (dead) parent's reaper is dead enough.
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}
