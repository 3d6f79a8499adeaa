package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
)

// Pauses continues paused agent and team runs (session.Service).
type Pauses interface {
	ContinuePaused(ctx context.Context, p session.ContinueParams) (*session.Turn, *session.Run, error)
	ResumeDecided(ctx context.Context, runID, by string) (bool, error)
	CancelPaused(ctx context.Context, runID, by string) (bool, error)
}

var (
	_ Pauses         = (*session.Service)(nil)
	_ approval.Inbox = (*store.DB)(nil)
)

// continueToolsRequest is the body of POST /agents|teams/{id}/runs/{run_id}/continue,
// in AgentOS's shape: tools, the paused calls with their decisions.
type continueToolsRequest struct {
	Tools      []event.ToolExecution `json:"tools" openapi:"required"`
	Stream     *bool                 `json:"stream"`
	Background *bool                 `json:"background"`
}

func parseContinue(c *gin.Context) (continueToolsRequest, error) {
	var req continueToolsRequest
	err := decodeRunBody(c, &req, "the decisions", func() error {
		if v := c.PostForm("tools"); v != "" {
			if err := json.Unmarshal([]byte(v), &req.Tools); err != nil {
				return Errorf(http.StatusUnprocessableEntity, "tools must be a JSON array of tool executions: %v", err)
			}
		}
		return formFlags(c, map[string]**bool{"stream": &req.Stream, "background": &req.Background})
	})
	return req, err
}

// decider names who decides, for the inbox: the key's user, else its name.
func decider(c *gin.Context) string {
	k := auth.Of(c).Key()
	switch {
	case k == nil:
		return "anonymous"
	case k.UserID != "":
		return k.UserID
	}
	return "key:" + k.Name
}

// continueAgentRun answers POST /agents|teams/{id}/runs/{run_id}/continue:
// the paused run's held calls get the client's decisions (confirmed, edited
// tool_args, user_input_schema values, result) and the run goes on: on this
// request (streamed by default, or one JSON answer with stream=false), or
// queued for any replica (background=true, 202).
func (h *Handler) continueAgentRun(typ string) handlerFunc {
	return func(c *gin.Context) error {
		req, err := parseContinue(c)
		if err != nil {
			return err
		}
		pauses, ok := h.opts.Runs.(Pauses)
		if !ok {
			return Errorf(http.StatusUnprocessableEntity, "this server cannot continue paused runs")
		}
		r, err := h.routeRun(c, typ)
		if err != nil {
			return err
		}
		stream := req.Stream == nil || *req.Stream
		background := req.Background != nil && *req.Background
		turn, run, err := pauses.ContinuePaused(c.Request.Context(), session.ContinueParams{Run: r, Calls: req.Tools, By: decider(c), Viewer: viewer(c),
			Background: background, Stream: stream && !background})
		if err != nil {
			return err
		}
		c.Header("X-Run-Id", run.ID)
		c.Header("X-Session-Id", run.SessionID)
		if background {
			c.JSON(http.StatusAccepted, backgroundRunResponse{RunID: run.ID, SessionID: run.SessionID, Status: string(run.Status)})
			return nil
		}
		traceHeaders(c, turn)
		if !stream {
			done := turn.Execute(c.Request.Context(), func(event.Event) {})
			c.JSON(http.StatusOK, h.runWithHeld(c.Request.Context(), done))
			return nil
		}
		w, closed := h.opts.Streams.Open(c.Writer)
		defer closed()
		turn.Execute(c.Request.Context(), func(e event.Event) { _ = h.writeFrame(w, e) })
		return nil
	}
}

// approvalResponse is one inbox record.
type approvalResponse struct {
	ID         string         `json:"id"`
	RunID      string         `json:"run_id"`
	SessionID  string         `json:"session_id"`
	ToolCallID string         `json:"tool_call_id"`
	TargetKind string         `json:"target_kind"`
	TargetName string         `json:"target_name"`
	AgentID    string         `json:"agent_id,omitempty"`
	TeamID     string         `json:"team_id,omitempty"`
	WorkflowID string         `json:"workflow_id,omitempty"`
	UserID     string         `json:"user_id,omitempty"`
	Tool       string         `json:"tool_name"`
	Args       map[string]any `json:"tool_args"`
	Reason     string         `json:"reason,omitempty"`
	Approvers  struct {
		Users  []string `json:"users"`
		Scopes []string `json:"scopes"`
	} `json:"approvers"`
	Status    string     `json:"status"`
	Default   string     `json:"default_decision"`
	Deadline  *time.Time `json:"deadline,omitempty"`
	DecidedBy string     `json:"decided_by,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	Comment   string     `json:"comment,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

func toApproval(r *approval.Record) approvalResponse {
	out := approvalResponse{ID: r.ID, RunID: r.RunID, SessionID: r.SessionID, ToolCallID: r.ToolCallID, TargetKind: r.TargetKind,
		TargetName: r.TargetName, UserID: r.UserID, Tool: r.Tool, Args: r.Args, Reason: r.Reason, Status: string(r.Status),
		Default: r.Default, DecidedBy: r.DecidedBy, Comment: r.Comment, CreatedAt: r.CreatedAt.UTC()}
	switch r.TargetKind {
	case session.TypeTeam:
		out.TeamID = r.TargetName
	case session.TypeWorkflow:
		out.WorkflowID = r.TargetName
	default:
		out.AgentID = r.TargetName
	}
	out.Approvers.Users, out.Approvers.Scopes = orEmpty(r.Approvers.Users), orEmpty(r.Approvers.Scopes)
	if !r.Deadline.IsZero() {
		d := r.Deadline.UTC()
		out.Deadline = &d
	}
	if !r.DecidedAt.IsZero() {
		d := r.DecidedAt.UTC()
		out.DecidedAt = &d
	}
	return out
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// viewer is who may see which approvals: an administrator (or an open
// server) all; any other key those whose approvers name its user or one of
// its scopes.
func viewer(c *gin.Context) *approval.Viewer {
	p := auth.Of(c)
	k := p.Key()
	if k == nil || p.Has(auth.ScopeAdmin) {
		return nil
	}
	return &approval.Viewer{UserID: k.UserID, Scopes: k.ScopeNames()}
}

func (h *Handler) inbox() (approval.Inbox, error) {
	in, ok := h.opts.Store.(approval.Inbox)
	if !ok {
		return nil, Errorf(http.StatusUnprocessableEntity, "this server keeps no approvals")
	}
	return in, nil
}

// approvalQuery reads the filters of GET /approvals and /approvals/count.
func approvalQuery(c *gin.Context) (approval.Query, error) {
	q := approval.Query{Viewer: viewer(c), UserID: c.Query("user_id")}
	if v := c.Query("status"); v != "" {
		q.Status = approval.Status(strings.ToLower(v))
		if !slices.Contains(approval.Statuses, q.Status) {
			return q, Errorf(http.StatusUnprocessableEntity, "status must be one of %v, got %q", approval.Statuses, v)
		}
	}
	if v := c.Query("agent_id"); v != "" {
		q.TargetKind, q.TargetName = session.TypeAgent, v
	}
	if v := c.Query("team_id"); v != "" {
		if q.TargetName != "" {
			return q, Errorf(http.StatusUnprocessableEntity, "filter by one of agent_id, team_id and workflow_id")
		}
		q.TargetKind, q.TargetName = session.TypeTeam, v
	}
	if v := c.Query("workflow_id"); v != "" {
		if q.TargetName != "" {
			return q, Errorf(http.StatusUnprocessableEntity, "filter by one of agent_id, team_id and workflow_id")
		}
		q.TargetKind, q.TargetName = session.TypeWorkflow, v
	}
	return q, nil
}

// listApprovals answers GET /approvals: the approvals the caller may
// decide, newest first, filtered by status, agent_id or team_id, and
// user_id, one page at a time ({data, meta}).
func (h *Handler) listApprovals(c *gin.Context) error {
	in, err := h.inbox()
	if err != nil {
		return err
	}
	q, err := approvalQuery(c)
	if err != nil {
		return err
	}
	if q.Limit, q.Page, err = paging(c); err != nil {
		return err
	}
	recs, total, err := in.ListApprovals(c.Request.Context(), q)
	if err != nil {
		return err
	}
	out := paged[approvalResponse]{Data: make([]approvalResponse, len(recs)), Meta: newPageMeta(q.Page, q.Limit, total)}
	for i := range recs {
		out.Data[i] = toApproval(&recs[i])
	}
	c.JSON(http.StatusOK, out)
	return nil
}

type approvalCountResponse struct {
	Count int `json:"count"`
}

// countApprovals answers GET /approvals/count: how many approvals the caller
// may decide are pending (the console's badge); the other filters apply too.
func (h *Handler) countApprovals(c *gin.Context) error {
	in, err := h.inbox()
	if err != nil {
		return err
	}
	q, err := approvalQuery(c)
	if err != nil {
		return err
	}
	if q.Status == "" {
		q.Status = approval.StatusPending
	}
	n, err := in.CountApprovals(c.Request.Context(), q)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, approvalCountResponse{Count: n})
	return nil
}

// getApproval answers GET /approvals/{id}; one the caller may not decide is
// not found.
func (h *Handler) getApproval(c *gin.Context) error {
	in, err := h.inbox()
	if err != nil {
		return err
	}
	r, err := in.GetApproval(c.Request.Context(), c.Param("id"), viewer(c))
	if errors.Is(err, approval.ErrNotFound) {
		return Errorf(http.StatusNotFound, "approval %s not found", c.Param("id"))
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toApproval(r))
	return nil
}

// resolveRequest is the body of POST /approvals/{id}/resolve.
type resolveRequest struct {
	Approved *bool  `json:"approved" openapi:"required"`
	Comment  string `json:"comment"`
}

// resolveApproval answers POST /approvals/{id}/resolve: the decision is
// recorded once (a second one is 409 naming who decided); when it was the
// run's last pending decision, the run resumes by itself on any replica.
func (h *Handler) resolveApproval(c *gin.Context) error {
	in, err := h.inbox()
	if err != nil {
		return err
	}
	var req resolveRequest
	if err := json.NewDecoder(c.Request.Body).Decode(&req); err != nil {
		return BodyError(err)
	}
	if req.Approved == nil {
		return Errorf(http.StatusUnprocessableEntity, "approved is required: true to let the call run, false to reject it")
	}
	if len(req.Comment) > 4096 {
		return Errorf(http.StatusUnprocessableEntity, "comment is longer than 4096 bytes; shorten it")
	}
	by := decider(c)
	rec, err := Resolve(c.Request.Context(), in, h.opts.Runs, h.opts.Learning, viewer(c), c.Param("id"), approval.Decision{Approved: *req.Approved, Comment: req.Comment, By: by})
	if err != nil {
		return err
	}
	h.log.Info("approval decided", "approval_id", rec.ID, "run_id", rec.RunID, "status", rec.Status, "decided_by", by)
	c.JSON(http.StatusOK, toApproval(rec))
	return nil
}

// Resolve records decision d on approval id for viewer v, and resumes its
// run by itself when it was the run's last pending decision, or at once for
// a workflow's approval step (runs, when it implements Pauses). It is the resolve route's logic, shared with the
// console's inbox: an approval v may not decide is a 404 *Error, one already
// decided a 409 *Error naming who decided it and when.
func Resolve(ctx context.Context, in approval.Inbox, runs any, learn LearningDecider, v *approval.Viewer, id string, d approval.Decision) (*approval.Record, error) {
	if _, err := in.GetApproval(ctx, id, v); errors.Is(err, approval.ErrNotFound) {
		return nil, Errorf(http.StatusNotFound, "approval %s not found", id)
	} else if err != nil {
		return nil, err
	}
	rec, left, err := in.ResolveApproval(ctx, id, d)
	if de, ok := errors.AsType[*approval.DecidedError](err); ok {
		return nil, Errorf(http.StatusConflict, "%s", de.Error())
	}
	if err != nil {
		return nil, err
	}
	if rec.TargetKind == approval.TargetLearning {
		// A proposed learning holds no run: approving it saves it.
		if learn == nil {
			return rec, errors.New("this server cannot apply learning decisions: the decision is recorded, but the learning is not saved")
		}
		if err := learn.Decide(ctx, rec); err != nil {
			return rec, fmt.Errorf("saving the approved learning %s: %w", rec.ID, err)
		}
		return rec, nil
	}
	// A workflow continues at each decided approval step; a tool call's
	// run once all its calls are decided.
	if left == 0 || rec.TargetKind == approval.TargetWorkflow {
		if p, ok := runs.(Pauses); ok {
			if _, err := p.ResumeDecided(ctx, rec.RunID, d.By); err != nil {
				return rec, err
			}
		}
	}
	return rec, nil
}

// Decider names who decides, for the inbox: the key's user, else its name.
func Decider(c *gin.Context) string { return decider(c) }

// ApprovalViewer is who may see and decide which approvals (nil: all).
func ApprovalViewer(c *gin.Context) *approval.Viewer { return viewer(c) }

// runWithHeld answers a run, with the calls it holds when it is PAUSED on
// them (so that a client that did not stream learns what to decide).
func (h *Handler) runWithHeld(ctx context.Context, r *store.Run) runResponse {
	out := h.toRun(r, false)
	if r.Status != event.StatusPaused || r.Type == session.TypeWorkflow {
		return out
	}
	ps, ok := h.opts.Store.(session.Pauser)
	if !ok {
		return out
	}
	p, err := ps.LoadPause(ctx, r.ID)
	if err != nil {
		if !errors.Is(err, session.ErrNotFound) {
			h.log.Warn("reading a paused run's held calls", "run_id", r.ID, "err", err)
		}
		return out
	}
	for _, c := range p.Calls {
		out.Tools = append(out.Tools, heldTool(c))
	}
	return out
}
