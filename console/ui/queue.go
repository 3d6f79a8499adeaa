package ui

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine/jobs"
)

// Queue is what the console needs from the job engine (the jobs.Client).
type Queue interface {
	Stats(ctx context.Context) ([]jobs.QueueStats, error)
	Jobs(ctx context.Context, q jobs.Query) (*jobs.Page, error)
	Requeue(ctx context.Context, id int64) (*jobs.Job, error)
}

var _ Queue = (*jobs.Client)(nil)

// queuePage lists the queues' counts and a page of jobs, filtered and paged
// as GET /queue/jobs is (one state at a time here).
func (h *Handler) queuePage(c *gin.Context) {
	q, err := api.JobQuery(c)
	if err != nil {
		h.fail(c, "the jobs", err)
		return
	}
	ctx := c.Request.Context()
	stats, err := h.opts.Queue.Stats(ctx)
	if err != nil {
		h.fail(c, "the job queues", err)
		return
	}
	page, err := h.opts.Queue.Jobs(ctx, q)
	if err != nil {
		h.fail(c, "the jobs", err)
		return
	}
	p := view.Jobs{Filter: view.JobFilter{Kind: q.Kind, Queue: q.Queue}, States: jobs.States, Next: page.Next,
		CanAdmin: auth.Of(c).Has(auth.ScopeAdmin)}
	if len(q.States) > 0 {
		p.Filter.State = q.States[0]
	}
	if id := c.Query("requeued"); id != "" {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			p.Flash = fmt.Sprintf("Job %d is available again and runs at once. A background run is executed at most once: if its run already started or ended, the job ends without running it again.", n)
		}
	}
	for _, s := range stats {
		p.QueueNames = append(p.QueueNames, s.Queue)
		p.Queues = append(p.Queues, view.JobQueue{Name: s.Queue, Concurrency: s.Concurrency, Available: s.Counts.Available, Scheduled: s.Counts.Scheduled,
			Running: s.Counts.Running, Retryable: s.Counts.Retryable, Completed: s.Counts.Completed, Cancelled: s.Counts.Cancelled,
			Discarded: s.Counts.Discarded, OldestAvailable: s.OldestAvailable})
		for _, k := range s.Kinds {
			if !slices.Contains(p.Kinds, k.Kind) {
				p.Kinds = append(p.Kinds, k.Kind)
			}
		}
	}
	slices.Sort(p.Kinds)
	for _, j := range page.Jobs {
		r := view.JobRow{ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: j.State, Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
			CreatedAt: j.CreatedAt, FinalizedAt: j.FinalizedAt}
		for _, k := range slices.Sorted(maps.Keys(j.Summary)) {
			r.Summary = append(r.Summary, k+"="+j.Summary[k])
		}
		for _, e := range j.Errors {
			r.Errors = append(r.Errors, view.JobError{At: e.At, Attempt: e.Attempt, Error: e.Error})
		}
		p.Rows = append(p.Rows, r)
	}
	h.render(c, http.StatusOK, view.JobsPage(h.frame(c, "Jobs", "queue"), p))
}

// requeueFromConsole runs a job again and goes back to the list.
func (h *Handler) requeueFromConsole(c *gin.Context) {
	id, err := api.JobID(c)
	if err != nil {
		h.fail(c, "the job", err)
		return
	}
	if _, err := h.opts.Queue.Requeue(c.Request.Context(), id); err != nil {
		h.fail(c, "the job", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/queue?requeued="+strconv.FormatInt(id, 10))
}
