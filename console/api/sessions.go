package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
)

// filter restricts store reads to the caller's user: a key bound to a user sees
// only that user's sessions; others may narrow with ?user_id=.
func filter(c *gin.Context) store.Filter {
	return store.Filter{UserID: auth.Of(c).UserID(c.Query("user_id"))}
}

func (h *Handler) listSessions(c *gin.Context) error {
	q := store.SessionQuery{Filter: filter(c), Type: c.Query("type"), ComponentID: c.Query("component_id"),
		Search: c.Query("search"), SortBy: c.Query("sort_by"), SortOrder: c.Query("sort_order")}
	var err error
	if q.Limit, q.Page, err = paging(c); err != nil {
		return err
	}
	if q.Type != "" && q.Type != "agent" && q.Type != "team" && q.Type != "workflow" {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "type must be agent, team or workflow"}
	}
	switch q.SortBy {
	case "", "created_at", "updated_at", "name", "session_name":
		if q.SortBy == "session_name" {
			q.SortBy = "name"
		}
	default:
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "sort_by must be created_at, updated_at or session_name"}
	}
	if q.SortOrder != "" && q.SortOrder != "asc" && q.SortOrder != "desc" {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "sort_order must be asc or desc"}
	}
	sessions, total, err := h.opts.Store.ListSessions(c.Request.Context(), q)
	if err != nil {
		return err
	}
	out := paged[sessionResponse]{Data: make([]sessionResponse, len(sessions)), Meta: newPageMeta(q.Page, q.Limit, total)}
	for i := range sessions {
		out.Data[i] = toSession(&sessions[i])
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// paging reads the limit (1–100, default 20) and page (from 1) query
// parameters every paged list takes.
func paging(c *gin.Context) (limit, page int, err error) {
	if limit, err = intQuery(c, "limit", 20, 1, 100); err != nil {
		return 0, 0, err
	}
	page, err = intQuery(c, "page", 1, 1, 1<<30)
	return limit, page, err
}

func intQuery(c *gin.Context, name string, def, lo, hi int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s must be a whole number from %d to %d", name, lo, hi)}
	}
	return n, nil
}

func (h *Handler) getSession(c *gin.Context) error {
	sess, err := h.opts.Store.GetSession(c.Request.Context(), c.Param("id"), filter(c))
	if err == nil {
		err = h.sessionStored(c.Request.Context(), sess.ID, filter(c), nil)
	}
	if err != nil {
		return about("session", err)
	}
	c.JSON(http.StatusOK, toSession(sess))
	return nil
}

// sessionStored returns store.ErrNotFound for a session none of whose
// top-level runs has finished yet. AgentOS stores a session when its first
// run ends and answers 404 before that, and Agent UI relies on it: it reads
// GET /sessions/{id}/runs as soon as RunStarted names a new session and
// replaces the live chat with the answer, so a 200 listing the running run
// (no content, no tools yet) wiped the tool calls streaming in. The session
// routes agree on it; DELETE still finds the session, so a run can be
// stopped with its session. runs, when given, are a page of the session's
// runs already read: a finished one among them saves the query.
func (h *Handler) sessionStored(ctx context.Context, id string, f store.Filter, runs []store.Run) error {
	for _, r := range runs {
		if r.ParentRunID == "" && r.Status.Terminal() {
			return nil
		}
	}
	ok, err := h.opts.Store.HasFinishedRun(ctx, id, f)
	if err == nil && !ok {
		err = fmt.Errorf("session %s has no finished run yet: %w", id, store.ErrNotFound)
	}
	return err
}

// Paging of GET /sessions/{id}/runs. AgentOS answers it with every run of
// the session as one JSON array, which for a 20,000-run session is tens of
// megabytes per request; the array stays (Agent UI reads it) but holds one
// page of turns: by default the latest sessionRunsLimit top-level runs with
// their members' runs, oldest first. Older turns are on later pages
// (?page=2), announced by the Link and X-Total-* headers.
const (
	sessionRunsLimit    = 100
	maxSessionRunsLimit = 500
)

func (h *Handler) listSessionRuns(c *gin.Context) error {
	limit, err := intQuery(c, "limit", sessionRunsLimit, 1, maxSessionRunsLimit)
	if err != nil {
		return err
	}
	page, err := intQuery(c, "page", 1, 1, 1<<20)
	if err != nil {
		return err
	}
	runs, total, err := h.opts.Store.RunsPage(c.Request.Context(), c.Param("id"), filter(c), limit, (page-1)*limit)
	if err == nil {
		err = h.sessionStored(c.Request.Context(), c.Param("id"), filter(c), runs)
	}
	if err != nil {
		return about("session", err)
	}
	pageHeaders(c, page, limit, total)
	out := make([]runResponse, len(runs))
	for i := range runs {
		out[i] = h.toRun(&runs[i], true)
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// pageHeaders describes the paging of a list answered as a bare JSON array
// (AgentOS's shape for lists of runs): the X-Total-Count, X-Total-Pages and
// X-Page headers and a Link header to the next (rel=next, older runs) and
// previous pages.
func pageHeaders(c *gin.Context, page, limit, total int) {
	pages := pageCount(total, limit)
	c.Header("X-Total-Count", strconv.Itoa(total))
	c.Header("X-Total-Pages", strconv.Itoa(pages))
	c.Header("X-Page", strconv.Itoa(page))
	var links []string
	link := func(p int, rel string) {
		q := c.Request.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("limit", strconv.Itoa(limit))
		links = append(links, fmt.Sprintf("<%s?%s>; rel=%q", c.Request.URL.Path, q.Encode(), rel))
	}
	if page < pages {
		link(page+1, "next")
	}
	if page > 1 {
		link(page-1, "prev")
	}
	if len(links) > 0 {
		c.Header("Link", strings.Join(links, ", "))
	}
}

func (h *Handler) renameSession(c *gin.Context) error {
	var body renameRequest
	if strings.HasPrefix(c.GetHeader("Content-Type"), "application/json") {
		if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil {
			return BodyError(err)
		}
	} else {
		body.SessionName = c.PostForm("session_name")
	}
	name, err := CheckSessionName(body.SessionName)
	if err != nil {
		return err
	}
	sess, err := h.opts.Store.RenameSession(c.Request.Context(), c.Param("id"), name, filter(c))
	if err != nil {
		return about("session", err)
	}
	c.JSON(http.StatusOK, toSession(sess))
	return nil
}

// updateSession changes a session's name and summary (AgentOS's PATCH
// /sessions/{id}); the summary keeps the point it covers, so the next fold
// starts from the edited text.
func (h *Handler) updateSession(c *gin.Context) error {
	var body updateSessionRequest
	if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil {
		return BodyError(err)
	}
	if body.SessionName == nil && body.Summary == nil {
		return Errorf(http.StatusUnprocessableEntity, "send session_name or summary ({\"summary\": \"...\", \"topics\": [...]}) to change")
	}
	var name string
	if body.SessionName != nil {
		n, err := CheckSessionName(*body.SessionName)
		if err != nil {
			return err
		}
		name = n
	}
	if body.Summary != nil {
		if strings.IndexByte(body.Summary.Summary, 0) >= 0 || len(body.Summary.Summary) > store.MaxSummaryBytes {
			return Errorf(http.StatusUnprocessableEntity, "summary.summary must be at most %d bytes of text without NUL bytes", store.MaxSummaryBytes)
		}
		if len(body.Summary.Topics) > store.MaxSummaryTopics {
			return Errorf(http.StatusUnprocessableEntity, "summary.topics may hold at most %d topics", store.MaxSummaryTopics)
		}
	}
	ctx := c.Request.Context()
	var (
		sess *store.Session
		err  error
	)
	if body.SessionName != nil {
		if sess, err = h.opts.Store.RenameSession(ctx, c.Param("id"), name, filter(c)); err != nil {
			return about("session", err)
		}
	}
	if body.Summary != nil {
		if sess, err = h.opts.Store.EditSummary(ctx, c.Param("id"), body.Summary.Summary, body.Summary.Topics, filter(c)); err != nil {
			return about("session", err)
		}
	}
	c.JSON(http.StatusOK, toSession(sess))
	return nil
}

func (h *Handler) deleteSession(c *gin.Context) error {
	if err := DeleteSession(c.Request.Context(), h.opts.Runs, h.opts.Store, c.Param("id"), filter(c)); err != nil {
		return about("session", err)
	}
	c.Status(http.StatusNoContent)
	return nil
}

// CheckSessionName checks a new session name: 1 to session.MaxSessionName
// characters (not bytes: "日本語" is 3) once trimmed, none of them a control
// character. Names are one line of text; NUL in particular cannot be stored
// in PostgreSQL, and stripping it after this check stored empty names.
func CheckSessionName(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	if name == "" || utf8.RuneCountInString(name) > session.MaxSessionName {
		return "", &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("a session name needs 1 to %d characters", session.MaxSessionName)}
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 || !utf8.ValidString(name) {
		return "", &Error{Status: http.StatusUnprocessableEntity, Msg: "a session name must be valid UTF-8 without control characters (such as NUL or line breaks)"}
	}
	return name, nil
}

// SessionDeleter deletes sessions (the store does).
type SessionDeleter interface {
	DeleteSessions(ctx context.Context, ids []string, f store.Filter) ([]string, error)
}

// SessionStopper stops the runs of sessions (the run service does).
type SessionStopper interface {
	StopSessions(ctx context.Context, ids []string, userID string)
}

// DeleteSession stops the runs of session id that are in progress, then
// deletes it with its runs; it answers store.ErrNotFound when f sees no such
// session. The API and the console delete sessions with it, so neither
// leaves a run writing to a deleted session.
func DeleteSession(ctx context.Context, runs SessionStopper, st SessionDeleter, id string, f store.Filter) error {
	runs.StopSessions(ctx, []string{id}, f.UserID)
	deleted, err := st.DeleteSessions(ctx, []string{id}, f)
	if err == nil && len(deleted) == 0 {
		err = store.ErrNotFound
	}
	return err
}

func (h *Handler) deleteSessions(c *gin.Context) error {
	var body deleteSessionsRequest
	if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil {
		return BodyError(err)
	}
	if len(body.SessionIDs) == 0 || len(body.SessionIDs) > 1000 {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "session_ids must list 1 to 1000 session ids"}
	}
	// The delete itself says which ids were the caller's: a silent 204 for
	// another user's ids read as success. Runs are stopped first, so none
	// writes to a deleted session; the run service stops only the caller's.
	ctx, f := c.Request.Context(), filter(c)
	ids := slices.Compact(slices.Sorted(slices.Values(body.SessionIDs)))
	h.opts.Runs.StopSessions(ctx, ids, f.UserID)
	deleted, err := h.opts.Store.DeleteSessions(ctx, ids, f)
	if err != nil {
		return err
	}
	if len(deleted) == 0 {
		// As DELETE /sessions/{id} answers for one: another user's session
		// is indistinguishable from none.
		return &Error{Status: http.StatusNotFound, Msg: "none of session_ids is a session this key can see; list them with GET /sessions"}
	}
	// Both lists keep the request's order, each id once.
	var mine, missing []string
	seen := make(map[string]bool, len(ids))
	for _, id := range body.SessionIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		if _, ok := slices.BinarySearch(deleted, id); ok {
			mine = append(mine, id)
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		c.Status(http.StatusNoContent) // as AgentOS answers
		return nil
	}
	c.JSON(http.StatusOK, deleteSessionsResponse{Deleted: mine, NotFound: missing})
	return nil
}

// deleteSessionsResponse answers a DELETE /sessions that deleted only some
// of the ids it was given.
type deleteSessionsResponse struct {
	Deleted  []string `json:"deleted" doc:"ids of the sessions deleted"`
	NotFound []string `json:"not_found" doc:"ids that are no session this key can see (none exists, or another user's); nothing was done for them"`
}
