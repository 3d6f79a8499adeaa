package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/troupehq/troupe/engine/session"
)

// RunQueueName is the queue of background runs: its workers are the
// replica's concurrent background runs (Options.Queues).
const RunQueueName = "runs"

// RunArgs are the arguments of a background run's job.
type RunArgs struct {
	RunID string `json:"run_id"`
	// SessionID and Component (the agent or team, "agent:name") say whose
	// run it is on the queue pages; jobs queued before they existed lack
	// them.
	SessionID string `json:"session_id,omitempty"`
	Component string `json:"component,omitempty"`
	// Resumed is when recovery set an interrupted workflow run back to
	// PENDING: it makes the resuming job distinct from the run's earlier
	// jobs (jobs are unique by their arguments).
	Resumed string `json:"resumed,omitempty"`
}

// Summary names the run, its session and component: never its input.
func (a RunArgs) Summary() map[string]string {
	s := map[string]string{"run_id": a.RunID}
	if a.SessionID != "" {
		s["session_id"] = a.SessionID
	}
	if a.Component != "" {
		s["component"] = a.Component
	}
	return s
}

// Kind names the background run kind.
func (RunArgs) Kind() string { return "background_run" }

// BackgroundRun executes a run submitted with background=true, at most
// once: the run service claims the run (PENDING to RUNNING, which only one
// caller can do) before executing it. The job has a second attempt, which
// never executes a run already claimed: it exists for a job whose process
// died, which River's rescuer gives back once its lease expires
// (Options.RescueAfter; at once on SQLite when the next process starts),
// and it ends such a run ERROR with the reason. A run not claimed yet by
// the first attempt is executed by the second.
var BackgroundRun = Kind[RunArgs]{MaxAttempts: 2, Timeout: NoTimeout, Unique: true, Queue: RunQueueName}

// Executor executes background runs (the run service).
type Executor interface {
	ExecuteQueued(ctx context.Context, runID string) (*session.Run, error)
	// FailAbandoned ends run runID ERROR with reason if it is still
	// RUNNING (its worker died); false if it was not.
	FailAbandoned(ctx context.Context, runID, reason string) (bool, error)
}

// abandonedRun is the error of a background run whose worker died.
const abandonedRun = "the process executing this background run stopped before it finished (its job's lease expired); the run was not retried"

// RegisterRuns makes clients built on r execute background runs with ex.
func RegisterRuns(r *Registry, ex Executor) {
	Register(r, BackgroundRun, func(ctx context.Context, a RunArgs) error {
		run, err := ex.ExecuteQueued(ctx, a.RunID)
		if err != nil || run != nil || Attempt(ctx) < 2 {
			return err
		}
		// Claimed by the first attempt, whose process died: never run
		// it again, say why it ended. (A requeued job of a run that ended
		// lands here too, and finds nothing to end.)
		ended, err := ex.FailAbandoned(ctx, a.RunID, abandonedRun)
		if ended {
			r.counters.leaseExpired.Add(1)
		}
		return err
	})
}

// Submitter stores background runs PENDING (the run service).
type Submitter interface {
	Submit(ctx context.Context, p session.Params) (*session.Run, error)
	Abandon(ctx context.Context, r *session.Run, reason string) error
	// CheckKey answers a request whose idempotency key is in use (a
	// *session.ReplayError, or a refusal), nil otherwise.
	CheckKey(ctx context.Context, p session.Params) error
}

var _ Submitter = (*session.Service)(nil)

// RunQueue submits background runs and queues their jobs, refusing new ones
// while MaxDepth runs wait.
type RunQueue struct {
	Client *Client
	Runs   Submitter
	// MaxDepth bounds the runs waiting to start, over every replica; 0
	// means no bound.
	MaxDepth int
	// RetryAfter is what a refusal tells the client to wait (default 2s).
	RetryAfter time.Duration
}

// Submit stores the run PENDING and queues it; a full queue is a
// *session.Error of kind session.ErrBusy. A request repeated with its
// idempotency key is answered (*session.ReplayError) before the queue's
// depth is looked at: its run exists already, so a full queue is no reason
// to refuse it.
func (q *RunQueue) Submit(ctx context.Context, p session.Params) (*session.Run, error) {
	if err := q.Runs.CheckKey(ctx, p); err != nil {
		return nil, err
	}
	if q.MaxDepth > 0 {
		n, err := q.Client.waiting(ctx, RunQueueName, q.MaxDepth)
		if err != nil {
			return nil, err
		}
		if n >= q.MaxDepth {
			wait := q.RetryAfter
			if wait <= 0 {
				wait = 2 * time.Second
			}
			return nil, &session.Error{Kind: session.ErrBusy, RetryAfter: wait,
				Msg: fmt.Sprintf("%d background runs are waiting to start, the most this server queues; retry later", n)}
		}
	}
	r, err := q.Runs.Submit(ctx, p)
	if err != nil {
		return nil, err
	}
	if _, err := Enqueue(ctx, q.Client, BackgroundRun, RunArgs{RunID: r.ID, SessionID: r.SessionID, Component: r.Type + ":" + r.ComponentID}); err != nil {
		if aerr := q.Runs.Abandon(ctx, r, "the run could not be queued: "+err.Error()); aerr != nil {
			return nil, fmt.Errorf("%w (and %w)", err, aerr)
		}
		return nil, err
	}
	return r, nil
}

// waitingSQL counts, up to a limit, the jobs of a queue not started yet.
// The depth check runs on every background submission: a bounded count
// reads at most limit index entries, where listing the jobs read whole rows
// (arguments, errors, metadata) — up to --max-queued-runs of them.
const waitingSQL = `SELECT count(*) FROM (SELECT 1 FROM river_job
	WHERE queue = $1 AND state IN ('available', 'pending', 'scheduled', 'retryable') LIMIT $2) AS w`

// waiting counts the jobs of queue not started yet, up to limit.
func (c *Client) waiting(ctx context.Context, queue string, limit int) (int, error) {
	var n int
	if err := c.exec.QueryRow(ctx, waitingSQL, queue, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("jobs: counting waiting jobs: %w", err)
	}
	return n, nil
}

// Resumer queues the jobs of workflow runs interrupted by a crash, which
// recovery sets back to PENDING: a worker of any replica claims the run and
// the workflow resumes after its last checkpointed step.
type Resumer struct{ Client *Client }

var _ session.Requeuer = Resumer{}

// Requeue implements session.Requeuer.
func (q Resumer) Requeue(ctx context.Context, r *session.Run) error {
	_, err := Enqueue(ctx, q.Client, BackgroundRun, RunArgs{RunID: r.ID, SessionID: r.SessionID, Component: r.Type + ":" + r.ComponentID,
		Resumed: r.UpdatedAt.UTC().Format(time.RFC3339Nano)})
	return err
}
