package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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

// ApprovalWebhookArgs are the arguments of a new approval's announcement.
type ApprovalWebhookArgs struct {
	ApprovalID string `json:"approval_id"`
}

// Kind names the approval webhook kind.
func (ApprovalWebhookArgs) Kind() string { return "approval_webhook" }

// Summary names the approval.
func (a ApprovalWebhookArgs) Summary() map[string]string {
	return map[string]string{"approval_id": a.ApprovalID}
}

// ApprovalWebhook posts a new approval to the configured webhook, retried
// with River's backoff until the receiver answers 2xx (or the attempts run
// out).
var ApprovalWebhook = Kind[ApprovalWebhookArgs]{MaxAttempts: 12, Timeout: 30 * time.Second, Unique: true}

// Webhook is where new approvals are announced.
type Webhook struct {
	URL    string
	Secret string
	// Client sends the announcements: the egress-filtered client, so a
	// webhook cannot reach private addresses unless allowed.
	Client *http.Client
}

// maxWebhookReply bounds what is read of a receiver's answer (for the error).
const maxWebhookReply = 512

// deliver posts the announcement of approval id.
func (w *Webhook) deliver(ctx context.Context, inbox approval.Inbox, id string) error {
	rec, err := inbox.GetApproval(ctx, id, nil)
	if errors.Is(err, approval.ErrNotFound) {
		return nil // its run was deleted
	}
	if err != nil {
		return err
	}
	body, err := approval.Announce(rec)
	if err != nil {
		return fmt.Errorf("encoding approval %s: %w", id, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("approval webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "troupe-approvals")
	if w.Secret != "" {
		req.Header.Set(approval.SignatureHeader, approval.Sign(w.Secret, body))
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return fmt.Errorf("approval webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxWebhookReply))
		return fmt.Errorf("approval webhook answered %s: %s", resp.Status, strings.TrimSpace(string(reply)))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return nil
}

// RegisterApprovals makes clients built on r apply approvals' defaults at
// their deadlines, resume the runs they complete, and (hook not nil)
// announce new approvals.
func RegisterApprovals(r *Registry, inbox approval.Inbox, runs DecidedResumer, hook *Webhook) {
	if hook != nil {
		Register(r, ApprovalWebhook, func(ctx context.Context, a ApprovalWebhookArgs) error {
			return hook.deliver(ctx, inbox, a.ApprovalID)
		})
	}
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
		// A workflow continues at each decided step; a tool call's run
		// once all its calls are decided.
		if left == 0 || rec.TargetKind == approval.TargetWorkflow {
			if _, err := runs.ResumeDecided(ctx, rec.RunID, TimeoutDecider); err != nil {
				return fmt.Errorf("resuming run %s: %w", rec.RunID, err)
			}
		}
		return nil
	})
}

// Approvals announces new approvals through the job engine: a timeout job
// at each deadline, and with Webhook a delivery job each.
type Approvals struct {
	Client  *Client
	Webhook bool
}

var _ session.Announcer = Approvals{}

// Announce implements session.Announcer.
func (q Approvals) Announce(ctx context.Context, records []approval.Record) error {
	for _, r := range records {
		if q.Webhook {
			if _, err := Enqueue(ctx, q.Client, ApprovalWebhook, ApprovalWebhookArgs{ApprovalID: r.ID}); err != nil {
				return fmt.Errorf("queueing the announcement of approval %s: %w", r.ID, err)
			}
		}
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
