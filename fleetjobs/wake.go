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
// again now, rather than at its next DrainPoll: a job River snoozed is
// made available. One that is running is left as it is (it is looking
// already); one that is over runs once more, finds itself over, and ends
// again. A failure only delays the parent.
func wakeParent(ctx context.Context, log *slog.Logger, m childMeta) {
	if m.ParentJob == 0 {
		return
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	if _, err := client.JobRetry(context.WithoutCancel(ctx), m.ParentJob); err != nil {
		log.InfoContext(ctx, "fleetjobs: could not wake a parent job (it looks again within DrainPoll)",
			"job", m.ParentJob, "err", err)
	}
}
