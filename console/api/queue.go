package api

import (
	"cmp"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine/jobs"
)

// Queue is what the API needs from the job engine: what operators see of
// its queues and jobs (the jobs.Client).
type Queue interface {
	Stats(ctx context.Context) ([]jobs.QueueStats, error)
	Jobs(ctx context.Context, q jobs.Query) (*jobs.Page, error)
	Requeue(ctx context.Context, id int64) (*jobs.Job, error)
}

var _ Queue = (*jobs.Client)(nil)

// queueCountsJSON are a queue's or kind's jobs by state.
type queueCountsJSON struct {
	Available int `json:"available"`
	Scheduled int `json:"scheduled"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Retryable int `json:"retryable"`
	Completed int `json:"completed"`
	Cancelled int `json:"cancelled"`
	Discarded int `json:"discarded"`
}

func countsJSON(c jobs.Counts) queueCountsJSON { return queueCountsJSON(c) }

type queueKindJSON struct {
	Kind   string          `json:"kind"`
	Counts queueCountsJSON `json:"counts"`
	// OldestAvailableSeconds is how long the oldest available job has
	// waited to start (0: none available).
	OldestAvailableSeconds float64 `json:"oldest_available_seconds"`
}

type queueJSON struct {
	Queue string `json:"queue"`
	// Concurrency is how many of the queue's jobs the replica that answered
	// runs at once (0: it does not work the queue).
	Concurrency int             `json:"concurrency"`
	Counts      queueCountsJSON `json:"counts"`
	// Depth is the jobs waiting: available, scheduled, pending and
	// retryable.
	Depth                  int             `json:"depth"`
	OldestAvailableSeconds float64         `json:"oldest_available_seconds"`
	Kinds                  []queueKindJSON `json:"kinds"`
}

type queueStatsResponse struct {
	// ReplicaID is the replica that answered (its concurrency is shown);
	// counts are over every replica on the database.
	ReplicaID string      `json:"replica_id"`
	Queues    []queueJSON `json:"queues"`
}

type jobErrorJSON struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
}

type jobJSON struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Queue       string     `json:"queue"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	AttemptedAt *time.Time `json:"attempted_at,omitempty"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty"`
	// AttemptedBy are the job clients (one per replica process) that tried
	// it, latest last.
	AttemptedBy []string       `json:"attempted_by"`
	Errors      []jobErrorJSON `json:"errors"`
	// Summary says which job it is (a run's, session's and component's ids;
	// a document's and its knowledge base's), never its input.
	Summary map[string]string `json:"summary"`
}

func jobView(j jobs.Job) jobJSON {
	out := jobJSON{ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: j.State, Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
		CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt, AttemptedAt: j.AttemptedAt, FinalizedAt: j.FinalizedAt,
		AttemptedBy: j.AttemptedBy, Errors: make([]jobErrorJSON, len(j.Errors)), Summary: j.Summary}
	if out.AttemptedBy == nil {
		out.AttemptedBy = []string{}
	}
	if out.Summary == nil {
		out.Summary = map[string]string{}
	}
	for i, e := range j.Errors {
		out.Errors[i] = jobErrorJSON(e)
	}
	return out
}

type jobsMeta struct {
	Limit int `json:"limit"`
	// NextCursor continues the list (pass it as cursor); empty on the last
	// page.
	NextCursor string `json:"next_cursor"`
}

type jobsResponse struct {
	Data []jobJSON `json:"data"`
	Meta jobsMeta  `json:"meta"`
}

type requeueResponse struct {
	Job jobJSON `json:"job"`
	// Detail says what running the job again does.
	Detail string `json:"detail"`
}

// requeueRunDetail is what requeueing a background run's job does.
const requeueRunDetail = "The job is available again. A background run is executed at most once: if its run has not started, it runs now; if it already started or ended, the job ends without executing it again (a run still marked RUNNING whose worker died is ended ERROR)."

// queueRoutes document the queue routes.
var queueRoutes = []Route{
	{Method: "get", Path: "/queue/stats", Tag: "Queue", Summary: "Job queue statistics",
		Desc: "Jobs of the job engine by queue, kind and state, over every replica on the database, with each queue's depth (available, scheduled, pending and retryable), the age of its oldest available job and the concurrency of the replica that answered. Requires admin.",
		Resp: queueStatsResponse{}},
	{Method: "get", Path: "/queue/jobs", Tag: "Queue", Summary: "List jobs",
		Desc: "Jobs newest first, with their attempt errors and a summary of their arguments that never includes a user's input; paged with a cursor. Requires admin.",
		Params: []Param{QueryParam("state", "Keep jobs in these states (comma-separated or repeated): available, scheduled, pending, running, retryable, completed, cancelled, discarded"),
			QueryParam("kind", "Job kind, such as background_run or knowledge_ingest"), QueryParam("queue", "Queue name, such as runs or default"),
			IntParam("limit", "Page size (1-200, default 50)"), QueryParam("cursor", "next_cursor of the previous page")},
		Resp: jobsResponse{}, Errors: map[int]string{422: "An unknown state, a malformed limit, or a cursor no page returned"}},
	{Method: "post", Path: "/queue/jobs/{job_id}/requeue", Tag: "Queue", Summary: "Run a job again",
		Desc:   "Makes a discarded, cancelled, completed or waiting job available at once (River's JobRetry), with one more attempt when it had used them all. " + requeueRunDetail + " Requires admin.",
		Params: []Param{PathParam("job_id", "Job id")}, Resp: requeueResponse{},
		Errors: map[int]string{404: "No such job (or River's cleaner deleted it)", 409: "The job is running; wait for it to finish", 422: "The job id is not a number"}},
}

func (h *Handler) queueStats(c *gin.Context) error {
	stats, err := h.opts.Queue.Stats(c.Request.Context())
	if err != nil {
		return err
	}
	out := queueStatsResponse{ReplicaID: h.opts.ReplicaID, Queues: make([]queueJSON, 0, len(stats))}
	for _, q := range stats {
		qj := queueJSON{Queue: q.Queue, Concurrency: q.Concurrency, Counts: countsJSON(q.Counts), Depth: q.Counts.Waiting(),
			OldestAvailableSeconds: q.OldestAvailable.Seconds(), Kinds: make([]queueKindJSON, 0, len(q.Kinds))}
		for _, k := range q.Kinds {
			qj.Kinds = append(qj.Kinds, queueKindJSON{Kind: k.Kind, Counts: countsJSON(k.Counts), OldestAvailableSeconds: k.OldestAvailable.Seconds()})
		}
		out.Queues = append(out.Queues, qj)
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// JobQuery reads the job list's filters and paging from a request's query
// (the API's and the console's).
func JobQuery(c *gin.Context) (jobs.Query, error) {
	q := jobs.Query{Kind: c.Query("kind"), Queue: c.Query("queue"), Cursor: c.Query("cursor")}
	for _, v := range c.QueryArray("state") {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				q.States = append(q.States, s)
			}
		}
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > jobs.MaxLimit {
			return q, Errorf(http.StatusUnprocessableEntity, "limit must be a number from 1 to %d", jobs.MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func (h *Handler) listJobs(c *gin.Context) error {
	q, err := JobQuery(c)
	if err != nil {
		return err
	}
	page, err := h.opts.Queue.Jobs(c.Request.Context(), q)
	if err != nil {
		return err
	}
	out := jobsResponse{Data: make([]jobJSON, 0, len(page.Jobs)), Meta: jobsMeta{Limit: cmp.Or(q.Limit, jobs.DefaultLimit), NextCursor: page.Next}}
	for _, j := range page.Jobs {
		out.Data = append(out.Data, jobView(j))
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// JobID reads a job id from a path.
func JobID(c *gin.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("job_id"), 10, 64)
	if err != nil {
		return 0, Errorf(http.StatusUnprocessableEntity, "job id %q is not a number; take one from GET /queue/jobs", c.Param("job_id"))
	}
	return id, nil
}

func (h *Handler) requeueJob(c *gin.Context) error {
	id, err := JobID(c)
	if err != nil {
		return err
	}
	j, err := h.opts.Queue.Requeue(c.Request.Context(), id)
	if err != nil {
		return err
	}
	out := requeueResponse{Job: jobView(*j), Detail: "The job is available again and runs at once."}
	if j.Kind == (jobs.RunArgs{}).Kind() {
		out.Detail = requeueRunDetail
	}
	c.JSON(http.StatusOK, out)
	return nil
}
