package cutovertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ReachedMarker starts the line a crash child prints (then waits) when
// it reaches the point where it is to be killed.
const ReachedMarker = "REACHED "

// KillChildAt runs the test named testName of this test binary in a child
// process, with env set to the JSON of arg, and kills it with SIGKILL as
// soon as it prints a line starting with ReachedMarker: a crash at a
// chosen point. The child reads arg with ChildArg. It fails tb if the
// child ends without reaching that point.
func KillChildAt(tb testing.TB, testName, env string, arg any) {
	tb.Helper()
	raw, err := json.Marshal(arg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^"+testName+"$")
	cmd.Env = append(os.Environ(), env+"="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	var seen []string
	for lines.Scan() {
		seen = append(seen, lines.Text())
		if strings.HasPrefix(lines.Text(), ReachedMarker) {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			return
		}
	}
	_ = cmd.Wait()
	tb.Fatalf("cutovertest: child %s never reached its crash point:\n%s", testName, strings.Join(seen, "\n"))
}

// ChildArg reads the argument KillChildAt passed in env into arg; it
// reports false in a process that is not such a child.
func ChildArg(tb testing.TB, env string, arg any) bool {
	raw := os.Getenv(env)
	if raw == "" {
		return false
	}
	if err := json.Unmarshal([]byte(raw), arg); err != nil {
		tb.Fatal(err)
	}
	return true
}

// Reached says the child reached its crash point, then waits for the kill.
func Reached(what string) {
	fmt.Printf("%s%s\n", ReachedMarker, what)
	select {}
}
