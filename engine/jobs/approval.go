package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// ApprovalTimeoutArgs are the arguments of an approval's timeout job.
type ApprovalTimeoutArgs struct {
	ApprovalID string `json:"approval_id"`
}

// Kind names the approval timeout kind.
func (ApprovalTimeoutArgs) Kind() string { return "approval_timeout" }

// Summary names the approval.
func (a ApprovalTimeoutArgs) Summary() map[string]string {
	return map[string]string{"approval_id": a.ApprovalID}
}

// ApprovalTimeout applies an approval's default decision at its deadline,
// scheduled when the approval is created. It is conditional: an approval
// decided in time is left alone.
var ApprovalTimeout = Kind[ApprovalTimeoutArgs]{MaxAttempts: 10, Unique: true}

// DecidedResumer queues a paused run once every decision it waits for was
// taken (the run service).
type DecidedResumer interface {
	ResumeDecided(ctx context.Context, runID, by string) (bool, error)
}

var _ DecidedResumer = (*session.Service)(nil)

// TimeoutDecider is who an expired approval names as its decider.
const TimeoutDecider = "timeout"

// RegisterApprovals makes clients built on r apply approvals' defaults at
// their deadlines and resume the runs they complete.
func RegisterApprovals(r *Registry, inbox approval.Inbox, runs DecidedResumer) {
	Register(r, ApprovalTimeout, func(ctx context.Context, a ApprovalTimeoutArgs) error {
		rec, err := inbox.GetApproval(ctx, a.ApprovalID, nil)
		if errors.Is(err, approval.ErrNotFound) {
			return nil // its run was deleted
		}
		if err != nil {
			return err
		}
		rec, left, err := inbox.ResolveApproval(ctx, a.ApprovalID, approval.Decision{Expired: true,
			Approved: rec.Default == spec.DecisionApprove, By: TimeoutDecider})
		if _, decided := errors.AsType[*approval.DecidedError](err); decided {
			return nil // decided in time
		}
		if err != nil {
			return err
		}
		if left == 0 {
			if _, err := runs.ResumeDecided(ctx, rec.RunID, TimeoutDecider); err != nil {
				return fmt.Errorf("resuming run %s: %w", rec.RunID, err)
			}
		}
		return nil
	})
}

// Approvals announces new approvals through the job engine: a timeout job
// at each deadline.
type Approvals struct{ Client *Client }

var _ session.Announcer = Approvals{}

// Announce implements session.Announcer.
func (q Approvals) Announce(ctx context.Context, records []approval.Record) error {
	for _, r := range records {
		if r.Deadline.IsZero() {
			continue
		}
		if _, err := q.Client.insert(ctx, scheduled[ApprovalTimeoutArgs]{k: ApprovalTimeout, at: r.Deadline}, ApprovalTimeoutArgs{ApprovalID: r.ID}); err != nil {
			return fmt.Errorf("scheduling the timeout of approval %s: %w", r.ID, err)
		}
	}
	return nil
}

// scheduled is a kind's insertion at a given time.
type scheduled[A Args] struct {
	k  Kind[A]
	at time.Time
}

func (s scheduled[A]) insertOpts() *river.InsertOpts {
	o := s.k.insertOpts()
	o.ScheduledAt = s.at
	return o
}
