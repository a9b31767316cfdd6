package physical

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
)

// copy is the background work of a conversion: pg_basebackup into a new
// localpg instance, started as a streaming standby. When it fails (and
// was not cancelled by Abort) it drops the slot, so the source does not
// keep WAL for a replica that will never come; Abort removes the rest.
func (cv *Conversion) copy(ctx context.Context) {
	defer close(cv.copyDone)
	cv.e.log.Info("physical: base backup started", "slot", cv.e.slot)
	t0 := time.Now()
	inst, err := localpg.StartFrom(ctx, &cv.replicaCfg, cv.baseBackup)
	if err != nil {
		err = fmt.Errorf("physical: %s: build the replica: %w", cv.e.spec, err)
		if ctx.Err() == nil {
			if dropErr := cv.e.src.dropSlot(context.WithoutCancel(ctx), cv.e.slot); dropErr != nil {
				err = errors.Join(err, dropErr)
			}
			cv.e.log.Warn("physical: base backup failed", "err", err)
		}
		cv.mu.Lock()
		cv.copyErr = err
		cv.mu.Unlock()
		return
	}
	cv.mu.Lock()
	cv.inst, cv.phase = inst, replica.PhaseStreaming
	if cv.total > cv.copied {
		cv.copied = cv.total
	}
	cv.mu.Unlock()
	cv.e.log.Info("physical: replica streams", "replica", inst, "copy", time.Since(t0).Round(time.Millisecond))
}

// baseBackup fills the replica's data directory: pg_basebackup as the
// server's user, streaming WAL through the conversion's slot (-X stream
// -S), writing standby.signal and primary_conninfo (-R). The password
// goes in the environment, not on the command line where ps shows it.
func (cv *Conversion) baseBackup(ctx context.Context, inst *localpg.Instance) error {
	checkpoint := "fast"
	if cv.spread {
		checkpoint = "spread"
	}
	args := []string{"-D", inst.DataDir(), "-d", cv.e.src.backupConnString, "-X", "stream", "-R",
		"-S", cv.e.slot, "-w", "--checkpoint=" + checkpoint}
	if !cv.replicaCfg.Fsync {
		args = append(args, "--no-sync")
	}
	if cv.maxRate != "" {
		args = append(args, "--max-rate="+cv.maxRate)
	}
	cmd := inst.Command(ctx, "pg_basebackup", args...)
	cmd.Env = os.Environ()
	if cv.e.src.password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+cv.e.src.password)
	}
	// pg_basebackup forks its WAL streamer; end the whole process group.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("pg_basebackup: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
