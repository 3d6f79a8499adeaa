package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
)

var _ approval.Inbox = (*store.DB)(nil)

// inbox is the store's approvals, when it keeps them.
func (h *Handler) inbox() (approval.Inbox, bool) {
	in, ok := h.opts.Store.(approval.Inbox)
	return in, ok
}

// approvalsPageSize is the inbox page's default length (limit= changes it).
const approvalsPageSize = 20

// approvalsPage lists the approvals the principal may decide, as GET
// /approvals does, with each request's run context.
func (h *Handler) approvalsPage(c *gin.Context) {
	in, ok := h.inbox()
	if !ok {
		h.Problem(c, http.StatusNotFound, "No approvals", "This server keeps no approvals.", "")
		return
	}
	p := view.Approvals{Status: c.DefaultQuery("status", string(approval.StatusPending)), Target: c.Query("target"), User: strings.TrimSpace(c.Query("user")), Page: 1}
	limit := approvalsPageSize
	if n, err := strconv.Atoi(c.Query("limit")); err == nil && n >= 1 && n <= 100 {
		limit = n
	}
	q := approval.Query{Viewer: api.ApprovalViewer(c), UserID: p.User, Limit: limit}
	if p.Status != "all" {
		q.Status = approval.Status(p.Status)
		if !slices.Contains(approval.Statuses, q.Status) {
			h.Problem(c, http.StatusUnprocessableEntity, "Unknown status", "Status must be pending, approved, rejected, expired or all, not "+p.Status+".", "")
			return
		}
	}
	if p.Target != "" {
		kind, name, ok := strings.Cut(p.Target, ":")
		if !ok || (kind != session.TypeAgent && kind != session.TypeTeam) || name == "" {
			h.Problem(c, http.StatusUnprocessableEntity, "Unknown agent or team", "Filter by agent:NAME or team:NAME, not "+p.Target+".", "")
			return
		}
		q.TargetKind, q.TargetName = kind, name
	}
	p.Page = pageParam(c)
	q.Page = p.Page
	ctx := c.Request.Context()
	recs, total, err := in.ListApprovals(ctx, q)
	if err != nil {
		h.fail(c, "the approvals", err)
		return
	}
	p.Total, p.TotalPages = total, pageCount(total, limit)
	for i := range recs {
		p.Rows = append(p.Rows, h.approvalRow(c, &recs[i]))
	}
	snap := h.opts.Engine.Current()
	for _, a := range snap.Agents() {
		p.Targets = append(p.Targets, session.TypeAgent+":"+a.Name())
	}
	for _, t := range snap.Teams() {
		p.Targets = append(p.Targets, session.TypeTeam+":"+t.Name())
	}
	v := url.Values{"status": {p.Status}}
	if p.Target != "" {
		v.Set("target", p.Target)
	}
	if p.User != "" {
		v.Set("user", p.User)
	}
	if limit != approvalsPageSize {
		v.Set("limit", strconv.Itoa(limit))
	}
	p.Base = "/ui/approvals?" + v.Encode()
	h.render(c, http.StatusOK, view.ApprovalsPage(h.frame(c, "Approvals", "approvals"), p))
}

// approvalRow is r with its run's context: the run's input and the
// session's user message before it. Approvers see the runs they decide,
// whoever's they are, so the lookups are not filtered by user.
func (h *Handler) approvalRow(c *gin.Context, r *approval.Record) view.ApprovalRow {
	args, _ := json.MarshalIndent(r.Args, "", "  ")
	if r.Args == nil {
		args = []byte("{}")
	}
	row := view.ApprovalRow{ID: r.ID, RunID: r.RunID, SessionID: r.SessionID, TargetKind: r.TargetKind, TargetName: r.TargetName,
		UserID: r.UserID, Tool: r.Tool, Args: string(args), Reason: r.Reason, Status: string(r.Status), Default: r.Default,
		Deadline: r.Deadline, DecidedBy: r.DecidedBy, DecidedAt: r.DecidedAt, Comment: r.Comment, CreatedAt: r.CreatedAt,
		TraceURL: "/ui/runs/" + r.RunID + "/trace"}
	if r.TargetKind == approval.TargetLearning {
		row.Insight, _ = r.Args["text"].(string)
		row.Topic, _ = r.Args["topic"].(string)
		row.Knowledge, _ = r.Args["knowledge"].(string)
		row.Runner = "agent"
		if r.Args["kind"] == "team" {
			row.Runner = "team"
		}
	}
	var who []string
	for _, u := range r.Approvers.Users {
		who = append(who, "user "+u)
	}
	for _, s := range r.Approvers.Scopes {
		who = append(who, "scope "+s)
	}
	row.Approvers = strings.Join(who, ", ")
	if row.Approvers == "" {
		row.Approvers = "administrators"
	}
	ctx := c.Request.Context()
	if run, err := h.opts.Store.GetRun(ctx, r.RunID, store.Filter{}); err == nil {
		row.Message = run.Input
	} else if !errors.Is(err, store.ErrNotFound) {
		h.log.Warn("reading an approval's run", "run_id", r.RunID, "err", err)
	}
	if runs, _, err := h.opts.Store.LatestRuns(ctx, r.SessionID, store.Filter{}, 2); err == nil {
		for _, run := range runs {
			if run.ID != r.RunID && run.Input != "" && run.CreatedAt.Before(r.CreatedAt) {
				row.Previous = run.Input
				break
			}
		}
	}
	return row
}

// approvalCount answers the navigation badge's poll: one COUNT of the
// pending approvals the principal may decide.
func (h *Handler) approvalCount(c *gin.Context) {
	n := 0
	if in, ok := h.inbox(); ok {
		var err error
		if n, err = in.CountApprovals(c.Request.Context(), approval.Query{Viewer: api.ApprovalViewer(c), Status: approval.StatusPending}); err != nil {
			h.fail(c, "the approvals count", err)
			return
		}
	}
	h.render(c, http.StatusOK, view.ApprovalCount(n))
}

// resolveFromConsole decides an approval with the resolve route's logic
// (api.Resolve) and answers with its row, decided; a refused decision
// answers with the row as it is now and the reason why.
func (h *Handler) resolveFromConsole(c *gin.Context) {
	in, ok := h.inbox()
	if !ok {
		h.Problem(c, http.StatusNotFound, "No approvals", "This server keeps no approvals.", "")
		return
	}
	var approved bool
	switch c.PostForm("decision") {
	case "approve":
		approved = true
	case "reject":
	default:
		h.Problem(c, http.StatusUnprocessableEntity, "No decision", "Press Approve or Reject.", "")
		return
	}
	comment := strings.TrimSpace(c.PostForm("comment"))
	if len(comment) > 4096 {
		h.Problem(c, http.StatusUnprocessableEntity, "Comment too long", "The comment is longer than 4096 bytes; shorten it.", "")
		return
	}
	ctx := c.Request.Context()
	id, v, by := c.Param("id"), api.ApprovalViewer(c), api.Decider(c)
	rec, err := api.Resolve(ctx, in, h.opts.Runs, h.opts.Learning, v, id, approval.Decision{Approved: approved, Comment: comment, By: by})
	notice := ""
	if err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict || rec != nil {
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				h.Problem(c, http.StatusNotFound, "Approval not found", "There is no such approval you may decide.", "It may have been deleted, or its approvers do not include you.")
				return
			}
			h.fail(c, "the decision", err)
			return
		}
		// Someone else decided first: show who, and the row as it is.
		notice = ae.Msg
		if rec, err = in.GetApproval(ctx, id, v); err != nil {
			h.fail(c, "the approval", err)
			return
		}
	} else {
		h.log.Info("approval decided", "approval_id", rec.ID, "run_id", rec.RunID, "status", rec.Status, "decided_by", by)
	}
	row := h.approvalRow(c, rec)
	row.Notice = notice
	if c.GetHeader("HX-Request") == "" {
		// Without htmx: back to the inbox.
		if notice != "" {
			h.Problem(c, http.StatusConflict, "Already decided", notice, "")
			return
		}
		c.Redirect(http.StatusSeeOther, "/ui/approvals")
		return
	}
	if notice == "" {
		c.Header("HX-Trigger", "approvals-decided") // the badge counts again
	}
	// htmx swaps only 2xx answers: a refused decision is answered 200 too,
	// its row saying who decided and when.
	h.render(c, http.StatusOK, view.ApprovalItem(row))
}
