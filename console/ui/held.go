package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
)

// held is a paused turn's held calls for the chat pane. The principal may
// decide them when it may decide every call that needs a confirmation
// (the inbox's rule, api.ApprovalViewer); user input and external results
// are the chatter's to give.
func (h *Handler) held(c *gin.Context, typ, runID string, calls []event.ToolExecution) view.Held {
	base := "/ui/" + typ + "s/" + c.Param("id") + "/runs/" + runID
	out := view.Held{RunID: runID, Continue: base + "/continue", Poll: base + "/held", CanDecide: true}
	in, keeps := h.inbox()
	v := api.ApprovalViewer(c)
	for _, call := range calls {
		args, err := json.MarshalIndent(call.ToolArgs, "", "  ")
		if err != nil || call.ToolArgs == nil {
			args = []byte("{}")
		}
		out.Calls = append(out.Calls, view.HeldCall{ToolExecution: call, Args: string(args)})
		if !call.RequiresConfirmation {
			continue
		}
		out.Confirm = true
		if !keeps || !auth.Of(c).Has(auth.ScopeApprovalsWrite) {
			out.CanDecide = false
			continue
		}
		if r, err := in.GetApproval(c.Request.Context(), call.ApprovalID, v); err != nil || r.Status != approval.StatusPending {
			out.CanDecide = false
		}
	}
	return out
}

// continueChat continues a paused chat turn with the decisions of its held
// calls' form, through the continue route's logic (ContinuePaused, the
// decider and viewer of the API), and streams the rest of the answer into
// the same turn.
func (h *Handler) continueChat(typ string) gin.HandlerFunc {
	return func(c *gin.Context) {
		pauses, ok := h.opts.Runs.(api.Pauses)
		ps, ok2 := h.opts.Store.(session.Pauser)
		if !ok || !ok2 {
			h.Problem(c, http.StatusUnprocessableEntity, "Cannot continue", "This server cannot continue paused runs.", "")
			return
		}
		ctx := c.Request.Context()
		p := auth.Of(c)
		runID := c.Param("run_id")
		run, err := h.opts.Store.GetRun(ctx, runID, store.Filter{UserID: p.UserID("")})
		if err == nil && (run.ComponentID != c.Param("id") || run.Type != typ || run.ParentRunID != "") {
			err = store.ErrNotFound
		}
		if err != nil {
			h.fail(c, "the run", err)
			return
		}
		pause, err := ps.LoadPause(ctx, runID)
		if errors.Is(err, session.ErrNotFound) {
			h.Problem(c, http.StatusConflict, "Not paused", "This run is not waiting for a decision any more.", "Reload the page to see how it went on.")
			return
		}
		if err != nil {
			h.fail(c, "the run", err)
			return
		}
		approved := c.PostForm("decision") != "reject"
		comment := strings.TrimSpace(c.PostForm("comment"))
		calls := make([]event.ToolExecution, 0, len(pause.Calls))
		for _, held := range pause.Calls {
			d := event.ToolExecution{ToolCallID: held.ToolCallID, Member: held.Member}
			if held.RequiresConfirmation {
				d.Confirmed, d.ConfirmationNote = &approved, comment
			}
			for _, f := range held.UserInputSchema {
				f.Value = c.PostForm("input:" + held.ToolCallID + ":" + f.Name)
				d.UserInputSchema = append(d.UserInputSchema, f)
			}
			if held.ExternalExecutionRequired {
				res := c.PostForm("result:" + held.ToolCallID)
				d.Result = &res
			}
			calls = append(calls, d)
		}
		turn, _, err := pauses.ContinuePaused(ctx, session.ContinueParams{Run: run, Calls: calls, By: api.Decider(c), Viewer: api.ApprovalViewer(c), Stream: true})
		if err != nil {
			h.fail(c, "the run", err)
			return
		}
		ratelimit.Started(c, runID)
		w, closed := h.opts.Streams.Open(c.Writer)
		defer closed()
		st := &chatStream{w: w, ctx: ctx, run: runID, members: map[string]string{}}
		summary := "Continued by " + api.Decider(c) + "."
		switch {
		case !pauseConfirms(pause.Calls):
		case approved:
			summary = "Approved by " + api.Decider(c) + "."
		default:
			summary = "Rejected by " + api.Decider(c) + "."
		}
		st.send("replace", map[string]string{"t": view.HeldID(runID), "h": st.html(view.HeldDecided(runID, summary))})
		h.streamTurn(c, st, turn, typ)
	}
}

func pauseConfirms(calls []event.ToolExecution) bool {
	for _, c := range calls {
		if c.RequiresConfirmation {
			return true
		}
	}
	return false
}

// heldRun answers a waiting turn's poll: the same held block while the run
// is still paused, its outcome and answer once someone else decided and it
// went on (and finished), which ends the polling.
func (h *Handler) heldRun(typ string) gin.HandlerFunc {
	return func(c *gin.Context) {
		run, err := h.opts.Store.GetRun(c.Request.Context(), c.Param("run_id"), store.Filter{UserID: auth.Of(c).UserID("")})
		if err == nil && (run.ComponentID != c.Param("id") || run.Type != typ || run.ParentRunID != "") {
			err = store.ErrNotFound
		}
		if err != nil {
			h.fail(c, "the run", err)
			return
		}
		switch run.Status {
		case event.StatusPaused:
			ps, ok := h.opts.Store.(session.Pauser)
			if !ok {
				break
			}
			pause, err := ps.LoadPause(c.Request.Context(), run.ID)
			if err != nil {
				h.fail(c, "the run", err)
				return
			}
			h.render(c, http.StatusOK, view.ChatHeld(h.held(c, typ, run.ID, pause.Calls)))
			return
		case event.StatusPending, event.StatusRunning:
			// Decided, still going: keep polling, the calls are decided.
			h.render(c, http.StatusOK, view.ChatHeld(view.Held{RunID: run.ID, Poll: c.Request.URL.Path}))
			return
		}
		h.render(c, http.StatusOK, view.HeldRun(view.HeldOutcome{RunID: run.ID, Status: string(run.Status), Content: run.Content, Error: run.Error, SessionID: run.SessionID}))
	}
}
