package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/workflow"
	"github.com/troupehq/troupe/store"
)

// WorkflowSteps reads the checkpoints of workflow runs (store.DB).
type WorkflowSteps interface {
	Steps(ctx context.Context, runID string) ([]workflow.Checkpoint, error)
}

var _ WorkflowSteps = (*store.DB)(nil)

// stepResponse is one step execution of a workflow run, as checkpointed.
type stepResponse struct {
	// Name is the step's name; Path adds its enclosing loops' iterations
	// and nested workflows ("loop[1]/write").
	Name      string          `json:"step_name"`
	Path      string          `json:"path"`
	Iteration int             `json:"iteration"`
	Status    string          `json:"status"`
	Input     string          `json:"input,omitempty"`
	Output    json.RawMessage `json:"output,omitempty"`
	Error     string          `json:"error,omitempty"`
	Attempts  int             `json:"attempts"`
	StartedAt time.Time       `json:"started_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	// Duration is from the step's first start to its last update, in
	// nanoseconds.
	Duration time.Duration `json:"duration_ns"`
}

// workflowRunResponse is a workflow run with its steps.
type workflowRunResponse struct {
	runResponse
	Steps []stepResponse `json:"steps"`
}

// getWorkflowRun answers GET /workflows/{id}/runs/{run_id}: the run, in any
// state, with every step execution checkpointed so far, in the order they
// started.
func (h *Handler) getWorkflowRun(c *gin.Context) error {
	r, err := h.routeRun(c, "workflow")
	if err != nil {
		return err
	}
	out := workflowRunResponse{runResponse: toRun(r, false), Steps: []stepResponse{}}
	if ws, ok := h.opts.Store.(WorkflowSteps); ok {
		cps, err := ws.Steps(c.Request.Context(), r.ID)
		if err != nil {
			return err
		}
		for _, cp := range cps {
			out.Steps = append(out.Steps, stepResponse{Name: cp.Name(), Path: cp.Path, Iteration: cp.Iteration, Status: string(cp.Status),
				Input: cp.Input, Output: cp.Output, Error: cp.Error, Attempts: cp.Attempts,
				StartedAt: cp.StartedAt.UTC(), UpdatedAt: cp.UpdatedAt.UTC(), Duration: cp.UpdatedAt.Sub(cp.StartedAt)})
		}
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// Continuer continues paused workflow runs (session.Service).
type Continuer interface {
	Continue(ctx context.Context, runID string) (*session.Run, error)
}

var _ Continuer = (*session.Service)(nil)

// continueRequest is the body of POST /workflows/{id}/runs/{run_id}/continue.
type continueRequest struct {
	Approved *bool  `json:"approved" openapi:"required"`
	Comment  string `json:"comment"`
}

// continueRun answers POST /workflows/{id}/runs/{run_id}/continue: the
// reviewer's decision on the approval step a PAUSED run waits at is
// recorded as the step's output, and the run is queued to execute again
// from its checkpoints (202; follow it with GET …/runs/{run_id} or resume).
// A rejection ends it CANCELLED.
func (h *Handler) continueRun(c *gin.Context) error {
	var req continueRequest
	if err := json.NewDecoder(c.Request.Body).Decode(&req); err != nil {
		return BodyError(err)
	}
	if req.Approved == nil {
		return Errorf(http.StatusUnprocessableEntity, "approved is required: true to continue the workflow, false to reject it")
	}
	ctx := c.Request.Context()
	r, err := h.routeRun(c, "workflow")
	if err != nil {
		return err
	}
	if r.Status != event.StatusPaused {
		return Errorf(http.StatusConflict, "run %s is %s, not PAUSED at an approval step: only a paused run can be continued", r.ID, r.Status)
	}
	ws, ok := h.opts.Store.(WorkflowSteps)
	cont, ok2 := h.opts.Runs.(Continuer)
	if !ok || !ok2 {
		return Errorf(http.StatusUnprocessableEntity, "this server cannot continue workflow runs")
	}
	saver, ok := h.opts.Store.(interface {
		SaveStep(ctx context.Context, c workflow.Checkpoint) error
	})
	if !ok {
		return Errorf(http.StatusUnprocessableEntity, "this server cannot continue workflow runs")
	}
	cps, err := ws.Steps(ctx, r.ID)
	if err != nil {
		return err
	}
	var step *workflow.Checkpoint
	for i := range cps {
		if cps[i].Status == event.StatusPaused {
			step = &cps[i]
		}
	}
	if step == nil {
		return Errorf(http.StatusConflict, "run %s has no approval step waiting", r.ID)
	}
	out, err := json.Marshal(workflow.Decision{Approved: *req.Approved, Comment: req.Comment})
	if err != nil {
		return err
	}
	step.Status, step.Output, step.UpdatedAt = event.StatusCompleted, out, time.Now()
	if err := saver.SaveStep(ctx, *step); err != nil {
		return err
	}
	run, err := cont.Continue(ctx, r.ID)
	if errors.Is(err, session.ErrNotFound) {
		return Errorf(http.StatusConflict, "run %s was continued already", r.ID)
	}
	if err != nil {
		return err
	}
	ratelimit.Started(c, run.ID)
	c.JSON(http.StatusAccepted, backgroundRunResponse{RunID: run.ID, SessionID: run.SessionID, Status: string(run.Status)})
	return nil
}
