package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
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
	r, err := h.opts.Store.GetRun(c.Request.Context(), c.Param("run_id"), store.Filter{UserID: auth.Of(c).UserID("")})
	if err != nil {
		return about("run", err)
	}
	if r.ComponentID != c.Param("id") || r.Type != "workflow" || r.ParentRunID != "" {
		return Errorf(http.StatusNotFound, "no run %s of workflow %s", c.Param("run_id"), c.Param("id"))
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
