package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// process is a worker process: this program re-executed with -worker.
type process struct {
	id     string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited
	err    error         // its exit, once exited is closed
	killed bool          // by kill: its exit is no error
}

// spawner starts worker processes, handing each the connection strings
// by environment.
type spawner struct {
	executable string
	control    string
	instances  map[string]string
	opts       options
}

func (s spawner) start(id string) (*process, error) {
	instances, err := json.Marshal(s.instances)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.executable, "-worker", id, "-tenants", strconv.Itoa(s.opts.tenants),
		"-moves-per-source", strconv.Itoa(s.opts.limits.movesPerSource), "-moves-per-target", strconv.Itoa(s.opts.limits.movesPerTarget),
		"-quiet-spell="+s.opts.limits.quietSpell.String(), "-v="+strconv.FormatBool(s.opts.verbose))
	cmd.Env = append(os.Environ(), envControl+"="+s.control, envInstances+"="+string(instances))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // stdout is the parent's report
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", id, err)
	}
	p := &process{id: id, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// kill ends the process with SIGKILL, as a crash or the OOM killer
// would: no deferred call, no client.Stop; its sessions close with it.
func (p *process) kill() error {
	p.killed = true
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill worker %s: %w", p.id, err)
	}
	<-p.exited
	return nil
}

// stop asks the process to stop (SIGTERM: its River client stops, letting
// running jobs finish) and waits for it; after grace it kills it. A
// worker that exits with an error, or has to be killed, is an error.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return p.exitErr()
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return errors.Join(fmt.Errorf("stop worker %s: %w", p.id, err), p.kill())
	}
	select {
	case <-p.exited:
		return p.exitErr()
	case <-time.After(grace):
		return errors.Join(fmt.Errorf("worker %s did not stop within %s of SIGTERM: killed", p.id, grace), p.kill())
	}
}

func (p *process) exitErr() error {
	if p.err != nil && !p.killed {
		return fmt.Errorf("worker %s: %w", p.id, p.err)
	}
	return nil
}
