package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/engine/approval"
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
	Continue(ctx context.Context, runID, path string, decision json.RawMessage) (*session.Run, error)
}

var _ Continuer = (*session.Service)(nil)

// ContinueWorkflow records a reviewer's decision on the approval step the
// PAUSED workflow run r waits at as the step's output, and queues the run
// to execute again from its checkpoints (a rejection ends it CANCELLED).
// The API's continue route and the console's approval buttons share it;
// st and runs must be able to read and save checkpoints and continue runs
// (store.DB, session.Service), else the answer is a 422.
//
// The step's inbox record is decided first (by by, who must be one of its
// approvers: v nil for an administrator): a step decided already, here or in
// the inbox, is a 409, so the inbox never shows a decided step as pending.
func ContinueWorkflow(ctx context.Context, st, runs any, r *store.Run, approved bool, comment, by string, v *approval.Viewer) (*session.Run, error) {
	if r.Status != event.StatusPaused {
		return nil, Errorf(http.StatusConflict, "run %s is %s, not PAUSED at an approval step: only a paused run can be continued", r.ID, r.Status)
	}
	ws, ok := st.(WorkflowSteps)
	cont, ok2 := runs.(Continuer)
	if !ok || !ok2 {
		return nil, Errorf(http.StatusUnprocessableEntity, "this server cannot continue workflow runs")
	}
	cps, err := ws.Steps(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	var step *workflow.Checkpoint
	var held []string
	for i := range cps {
		if cps[i].Status != event.StatusPaused {
			continue
		}
		if id := cps[i].HeldRun(); id != "" {
			held = append(held, fmt.Sprintf("step %s waits on run %s", cps[i].Path, id))
			continue
		}
		step = &cps[i]
	}
	if step == nil && len(held) > 0 {
		return nil, Errorf(http.StatusConflict, "run %s has no approval step waiting: %s, paused on tool calls; decide them in the approvals inbox (GET /approvals) or through that run's continue route",
			r.ID, strings.Join(held, ", "))
	}
	if step == nil {
		return nil, Errorf(http.StatusConflict, "run %s has no approval step waiting", r.ID)
	}
	if err := decideStep(ctx, st, r.ID, step.Path, approved, comment, by, v); err != nil {
		return nil, err
	}
	out, err := json.Marshal(workflow.Decision{Approved: approved, Comment: comment})
	if err != nil {
		return nil, err
	}
	// The decision and the run's reopening commit together, conditional on
	// both being PAUSED: of racing continues one wins, and the decision
	// recorded is the winner's.
	run, err := cont.Continue(ctx, r.ID, step.Path, out)
	if errors.Is(err, session.ErrNotFound) {
		return nil, Errorf(http.StatusConflict, "run %s was continued already: read its decision in GET …/runs/%s", r.ID, r.ID)
	}
	return run, err
}

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
	r, err := h.routeRun(c, "workflow")
	if err != nil {
		return err
	}
	run, err := ContinueWorkflow(c.Request.Context(), h.opts.Store, h.opts.Runs, r, *req.Approved, req.Comment, decider(c), viewer(c))
	if err != nil {
		return err
	}
	ratelimit.Started(c, run.ID)
	c.JSON(http.StatusAccepted, backgroundRunResponse{RunID: run.ID, SessionID: run.SessionID, Status: string(run.Status)})
	return nil
}

// decideStep records the decision on the inbox record of run runID's
// approval step at path, if it has one (runs paused before approval steps
// had records have none).
func decideStep(ctx context.Context, st any, runID, path string, approved bool, comment, by string, v *approval.Viewer) error {
	ps, ok := st.(session.Pauser)
	in, ok2 := st.(approval.Inbox)
	if !ok || !ok2 {
		return nil
	}
	recs, err := ps.RunApprovals(ctx, runID)
	if err != nil {
		return err
	}
	id := workflow.StepApprovalID(runID, path)
	for i := range recs {
		rec := &recs[i]
		if rec.ID != id {
			continue
		}
		if rec.Status == approval.StatusPending && !v.CanDecide(rec) {
			return Errorf(http.StatusForbidden, "step %s needs a decision by its approvers (users %v, scopes %v); this key is not one of them",
				path, rec.Approvers.Users, rec.Approvers.Scopes)
		}
		_, _, err := in.ResolveApproval(ctx, id, approval.Decision{Approved: approved, Comment: comment, By: by})
		if de, ok := errors.AsType[*approval.DecidedError](err); ok {
			return Errorf(http.StatusConflict, "%s", de.Error())
		}
		return err
	}
	return nil
}
