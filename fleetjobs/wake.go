package fleetjobs

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// childMeta is what a job enqueued by a drain, a refill or a chain reads
// of its metadata.
type childMeta struct {
	Parent    string `json:"daisychain_parent,omitempty"`
	ParentJob int64  `json:"daisychain_parent_job,omitempty"`
	Retire    bool   `json:"daisychain_retire,omitempty"`
}

// metaOf reads a job's childMeta; a job enqueued otherwise has none.
func metaOf(job *rivertype.JobRow) childMeta {
	var m childMeta
	_ = json.Unmarshal(job.Metadata, &m)
	return m
}

// encode is the metadata of a child job.
func (m childMeta) encode() []byte {
	b, _ := json.Marshal(m)
	return b
}

// wakeParent makes the drain, refill or chain waiting for a job look
// again now, rather than at its next DrainPoll, if it is snoozing. A
// failure only delays the parent.
func wakeParent(ctx context.Context, log *slog.Logger, m childMeta) {
	if m.ParentJob == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	client := river.ClientFromContext[pgx.Tx](ctx)
	// Only a waiting parent (River keeps a short snooze available, its
	// time ahead): JobRetry would also run again a parent that is over
	// (completed or cancelled), and one running looks again by itself at
	// its next round.
	parent, err := client.JobGet(ctx, m.ParentJob)
	waiting := parent != nil && (parent.State == rivertype.JobStateScheduled ||
		parent.State == rivertype.JobStateAvailable || parent.State == rivertype.JobStateRetryable)
	if err == nil && waiting {
		_, err = client.JobRetry(ctx, m.ParentJob)
	}
	if err != nil {
		log.InfoContext(ctx, "fleetjobs: could not wake a parent job (it looks again within DrainPoll)",
			"job", m.ParentJob, "err", err)
	}
}
