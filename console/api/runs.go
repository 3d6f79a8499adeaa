package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/console/sse"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// runRequest is the body of POST /agents/{id}/runs, as JSON or as a form.
type runRequest struct {
	Message string `json:"message" form:"message" openapi:"required"`
	// Input is a workflow's input object (its input schema), instead of
	// message; as a form field, its JSON.
	Input     map[string]any `json:"input,omitempty" form:"input"`
	Stream    *bool          `json:"stream" form:"stream"`
	SessionID string         `json:"session_id" form:"session_id"`
	UserID    string         `json:"user_id" form:"user_id"`
	// Background queues the run and answers 202 at once; any replica
	// executes it, and GET …/runs/{run_id} tells its state and result.
	Background *bool `json:"background" form:"background"`
	// SessionState is merged into the session's key-value state before
	// the run (AgentOS session_state; null deletes a key); as a form
	// field, its JSON.
	SessionState map[string]any `json:"session_state,omitempty" form:"session_state"`
	// Files are AgentOS's files: images for vision models, documents
	// (PDF, Markdown, text…) whose text the model reads; multipart only.
	Files []files.Upload `json:"-" form:"-"`
}

// decodeRunBody decodes the body of a run route into req: JSON, or a form
// (multipart or urlencoded, as AgentOS clients send) whose fields fromForm
// reads. what names the body in the unsupported-type error.
func decodeRunBody(c *gin.Context, req any, what string, fromForm func() error) error {
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch ct {
	case "application/json":
		if err := json.NewDecoder(c.Request.Body).Decode(req); err != nil {
			return BodyError(err)
		}
		return nil
	case "multipart/form-data", "application/x-www-form-urlencoded", "":
		if ct == "multipart/form-data" {
			if err := c.Request.ParseMultipartForm(1 << 20); err != nil {
				return BodyError(err)
			}
		}
		return fromForm()
	}
	return &Error{Status: http.StatusUnsupportedMediaType, Msg: "send " + what + " as application/json or a form (multipart/form-data or urlencoded)"}
}

// formFlags reads the form's true/false fields into flags (left nil when
// absent or empty).
func formFlags(c *gin.Context, flags map[string]**bool) error {
	for name, dst := range flags {
		if v, ok := c.GetPostForm(name); ok && v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Errorf(http.StatusUnprocessableEntity, "%s must be true or false, got %q", name, v)
			}
			*dst = &b
		}
	}
	return nil
}

func parseRunRequest(c *gin.Context, limits files.Limits) (runRequest, error) {
	var req runRequest
	err := decodeRunBody(c, &req, "the run", func() error {
		req.Message = c.PostForm("message")
		if v := c.PostForm("input"); v != "" {
			if err := json.Unmarshal([]byte(v), &req.Input); err != nil {
				return Errorf(http.StatusUnprocessableEntity, "input must be a JSON object: %v", err)
			}
		}
		if v := c.PostForm("session_state"); v != "" {
			if err := json.Unmarshal([]byte(v), &req.SessionState); err != nil {
				return Errorf(http.StatusUnprocessableEntity, "session_state must be a JSON object: %v", err)
			}
		}
		req.SessionID = c.PostForm("session_id")
		req.UserID = c.PostForm("user_id")
		var err error
		if req.Files, err = FormUploads(c.Request.MultipartForm, limits); err != nil {
			return err
		}
		return formFlags(c, map[string]**bool{"stream": &req.Stream, "background": &req.Background})
	})
	if err != nil {
		return req, err
	}
	if req.Input != nil {
		if req.Message != "" {
			return req, &Error{Status: http.StatusUnprocessableEntity, Msg: "send message or input, not both"}
		}
		// A workflow's run input is its input object as JSON.
		b, err := json.Marshal(req.Input)
		if err != nil {
			return req, Errorf(http.StatusUnprocessableEntity, "input: %v", err)
		}
		req.Message = string(b)
	}
	if strings.TrimSpace(req.Message) == "" {
		return req, &Error{Status: http.StatusUnprocessableEntity, Msg: "message is required"}
	}
	return req, nil
}

func kindOf(typ string) spec.Kind { return session.KindOf(typ) }

// createRun answers POST /agents/{id}/runs and POST /teams/{id}/runs: the
// run service does the run; this translates the request into its Params and
// its events into AgentOS frames (or one JSON answer).
func (h *Handler) createRun(typ string) handlerFunc {
	kind := kindOf(typ)
	return func(c *gin.Context) error {
		req, err := parseRunRequest(c, h.opts.FileLimits)
		if err != nil {
			return err
		}
		if len(req.Files) > 0 && kind == spec.KindWorkflow {
			return Errorf(http.StatusUnprocessableEntity, "workflows take an input object, not files; send files to an agent or a team")
		}
		if kind == spec.KindWorkflow && req.Input != nil {
			if err := h.checkWorkflowInput(c.Param("id"), req.Input); err != nil {
				return err
			}
		}
		stream := req.Stream == nil || *req.Stream
		p := session.Params{Kind: kind, Name: c.Param("id"), Message: req.Message, SessionID: req.SessionID,
			UserID: auth.Of(c).UserID(req.UserID), Stream: stream, BoundUser: auth.Of(c).Bound(), Link: RunLink(c), State: req.SessionState}
		background := req.Background != nil && *req.Background
		if background && req.SessionState != nil {
			// The queue carries the request's run, not its state: refused
			// rather than dropped.
			return Errorf(http.StatusUnprocessableEntity, "session_state cannot be sent with background: true; send it on a foreground run")
		}
		if background && len(req.Files) > 0 {
			return Errorf(http.StatusUnprocessableEntity, "files cannot be sent with background: true; send them on a foreground run")
		}
		if len(req.Files) > 0 {
			// Checked here; the run service stores them, or refuses them
			// on a server that keeps no files.
			if p.Files, err = files.Check(req.Files, h.opts.FileLimits); err != nil {
				return err
			}
		}
		if key := c.GetHeader("Idempotency-Key"); key != "" {
			p.IdempotencyKey, p.RequestHash = key, requestHash(p, background)
		}
		if background {
			return h.submitRun(c, p)
		}
		turn, err := h.opts.Runs.Start(c.Request.Context(), p)
		if replay, ok := errors.AsType[*session.ReplayError](err); ok {
			return h.replayRun(c, typ, replay.RunID, false, stream)
		}
		if err != nil {
			return err
		}
		ratelimit.Started(c, turn.RunID())
		c.Header("X-Run-Id", turn.RunID())
		c.Header("X-Session-Id", turn.SessionID())
		traceHeaders(c, turn)
		if !stream {
			run := turn.Execute(c.Request.Context(), func(event.Event) {})
			c.JSON(http.StatusOK, h.runWithHeld(c.Request.Context(), run))
			return nil
		}
		w, closed := h.opts.Streams.Open(c.Writer)
		defer closed()
		turn.Execute(c.Request.Context(), func(e event.Event) { _ = h.writeFrame(w, e) })
		return nil
	}
}

// submitRun answers a run request with background=true: the run is stored
// PENDING and queued, and the client polls GET …/runs/{run_id}.
func (h *Handler) submitRun(c *gin.Context, p session.Params) error {
	if h.opts.Background == nil {
		return Errorf(http.StatusUnprocessableEntity, "background runs are not available on this server")
	}
	p.Stream = false // nobody is listening
	r, err := h.opts.Background.Submit(c.Request.Context(), p)
	if replay, ok := errors.AsType[*session.ReplayError](err); ok {
		return h.replayRun(c, string(session.TypeOf(p.Kind)), replay.RunID, true, false)
	}
	if err != nil {
		return err
	}
	ratelimit.Started(c, r.ID)
	c.Header("X-Run-Id", r.ID)
	c.Header("X-Session-Id", r.SessionID)
	c.JSON(http.StatusAccepted, backgroundRunResponse{RunID: r.ID, SessionID: r.SessionID, Status: string(r.Status)})
	return nil
}

// requestHash identifies a run request for its Idempotency-Key: the same
// key with another request is refused.
func requestHash(p session.Params, background bool) string {
	b, _ := json.Marshal(struct {
		Kind, Name, Message, SessionID, UserID string
		Stream, Background                     bool
		State                                  map[string]any `json:",omitempty"`
		Files                                  []string       `json:",omitempty"`
	}{string(p.Kind), p.Name, p.Message, p.SessionID, p.UserID, p.Stream, background, p.State, fileSums(p.Files)})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// fileSums are the names and contents of a request's files, for its hash.
func fileSums(fs []files.File) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name+":"+f.SHA256)
	}
	return out
}

// replayRun answers a run request repeated with its Idempotency-Key with
// the run the first request made, as the first request was answered: 202
// with its current status for a background run; for a streaming request
// (stream), the run's stream from its first event, as resume serves it
// (every event while the run executes or its journal or log has them,
// followed live until its end; else the terminal event made from the
// stored run); otherwise 200 with the run once it has ended, waiting for
// it like the first request does when it is still running (a client that
// retries a request that timed out gets the answer, not RUNNING).
func (h *Handler) replayRun(c *gin.Context, typ, runID string, background, stream bool) error {
	ctx := c.Request.Context()
	f := store.Filter{UserID: auth.Of(c).UserID("")}
	r, err := h.opts.Store.GetRun(ctx, runID, f)
	if err != nil {
		return about("run", err)
	}
	var replay *session.Replay
	if stream || !background && !r.Status.Terminal() {
		replay, err = h.opts.Runs.Resume(ctx, session.ResumeParams{Kind: kindOf(typ), Name: r.ComponentID,
			RunID: r.ID, After: -1, UserID: f.UserID})
		if err != nil {
			return err
		}
	}
	if !stream && replay != nil {
		// The run's end is its terminal event; the events themselves are
		// not wanted.
		if err := replay.Stream(ctx, func(event.Event) error { return nil }); err != nil {
			return fmt.Errorf("waiting for run %s to end: %w", r.ID, err)
		}
		if r, err = h.opts.Store.GetRun(ctx, runID, f); err != nil {
			return about("run", err)
		}
	}
	c.Header("Idempotent-Replayed", "true")
	c.Header("X-Run-Id", r.ID)
	c.Header("X-Session-Id", r.SessionID)
	switch {
	case background:
		c.JSON(http.StatusAccepted, backgroundRunResponse{RunID: r.ID, SessionID: r.SessionID, Status: string(r.Status)})
	case stream:
		h.streamReplay(c, replay, r.ID)
	default:
		c.JSON(http.StatusOK, h.toRun(r, false))
	}
	return nil
}

// getRun answers GET /agents/{id}/runs/{run_id}: a run of that agent (or
// team) the caller may see, in any state, with its result once it ended.
func (h *Handler) getRun(typ string) handlerFunc {
	return func(c *gin.Context) error {
		r, err := h.routeRun(c, typ)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, h.runWithHeld(c.Request.Context(), r))
		return nil
	}
}

// routeRun returns the top-level run the route names (run_id) of the agent,
// team or workflow it names (id), if the caller may see it; a run of
// another component, or a member's run, is not found.
func (h *Handler) routeRun(c *gin.Context, typ string) (*store.Run, error) {
	r, err := h.opts.Store.GetRun(c.Request.Context(), c.Param("run_id"), store.Filter{UserID: auth.Of(c).UserID("")})
	if err != nil {
		return nil, about("run", err)
	}
	if r.ComponentID != c.Param("id") || r.Type != typ || r.ParentRunID != "" && !h.workflowStep(c, r) {
		return nil, Errorf(http.StatusNotFound, "no run %s of %s %s", c.Param("run_id"), typ, c.Param("id"))
	}
	return r, nil
}

// workflowStep reports whether child run r is the run of a workflow's step:
// those are addressed as their agent's or team's runs (a step paused on tool
// decisions continues through its own run's continue route), a team
// member's are not.
func (h *Handler) workflowStep(c *gin.Context, r *store.Run) bool {
	p, err := h.opts.Store.GetRun(c.Request.Context(), r.ParentRunID, store.Filter{UserID: auth.Of(c).UserID("")})
	return err == nil && p.Type == session.TypeWorkflow
}

// runStatuses are the statuses GET …/runs filters by.
var runStatuses = []event.Status{event.StatusPending, event.StatusRunning, event.StatusCompleted, event.StatusError, event.StatusCancelled, event.StatusPaused}

// listRuns answers GET /agents/{id}/runs and GET /teams/{id}/runs: the
// agent's (or team's) top-level runs the caller may see, newest first, of
// one session (session_id, which AgentOS requires and Troupe does not) and
// one status when asked, one page at a time. It is a bare array, AgentOS's
// shape, paged like GET /sessions/{id}/runs (limit, page, X-Total-* and
// Link headers). Each run has the shape GET …/runs/{run_id} answers with;
// neither has messages. Runs of an agent removed from the spec folder are
// still listed: they are history.
func (h *Handler) listRuns(typ string) handlerFunc {
	return func(c *gin.Context) error {
		q := store.RunQuery{Filter: filter(c), Type: typ, ComponentID: c.Param("id"), SessionID: c.Query("session_id")}
		var err error
		if q.Limit, q.Page, err = paging(c); err != nil {
			return err
		}
		if v := c.Query("status"); v != "" {
			q.Status = event.Status(strings.ToUpper(v))
			if !slices.Contains(runStatuses, q.Status) {
				return Errorf(http.StatusUnprocessableEntity, "status must be one of %v, got %q", runStatuses, v)
			}
		}
		runs, total, err := h.opts.Store.ListComponentRuns(c.Request.Context(), q)
		if err != nil {
			return err
		}
		pageHeaders(c, q.Page, q.Limit, total)
		out := make([]runResponse, len(runs))
		for i := range runs {
			out[i] = h.toRun(&runs[i], false)
		}
		c.JSON(http.StatusOK, out)
		return nil
	}
}

// writeFrame sends e as an AgentOS frame with its index as the SSE id, so an
// EventSource that reconnects says where to resume.
func (h *Handler) writeFrame(w *sse.Writer, e event.Event) error {
	if e.Type == event.ModelRequestCompleted || e.Type == event.GuardrailChecked {
		return nil // internal accounting and trace spans; AgentOS clients do not expect them
	}
	frame := toSSE(e)
	if frame.ContentType == "str" && e.AgentID != "" {
		frame.ContentType = h.contentType(e.AgentID)
	}
	return w.EventID(strconv.Itoa(e.Index), frame.Event, frame)
}

// resumeRun answers POST and GET /agents|teams/{id}/runs/{run_id}/resume:
// the run's events after the last one the client has (last_event_index in
// the body, else the Last-Event-ID header, else none), then its live ones,
// until its terminal event. The run service finds them on any replica.
func (h *Handler) resumeRun(typ string) handlerFunc {
	kind := kindOf(typ)
	return func(c *gin.Context) error {
		after, err := parseResume(c)
		if err != nil {
			return err
		}
		replay, err := h.opts.Runs.Resume(c.Request.Context(), session.ResumeParams{Kind: kind, Name: c.Param("id"),
			RunID: c.Param("run_id"), After: after, UserID: auth.Of(c).UserID("")})
		if err != nil {
			return err
		}
		h.streamReplay(c, replay, c.Param("run_id"))
		return nil
	}
}

// streamReplay streams replay's events as AgentOS frames, with heartbeats,
// until the run's terminal event or the client leaves.
func (h *Handler) streamReplay(c *gin.Context, replay *session.Replay, runID string) {
	w, closed := h.opts.Streams.Open(c.Writer)
	defer closed()
	ctx, stop := context.WithCancel(c.Request.Context())
	var beats sync.WaitGroup
	beats.Go(func() { w.Heartbeats(ctx, sse.HeartbeatInterval) })
	defer beats.Wait()
	defer stop()
	if err := replay.Stream(ctx, func(e event.Event) error { return h.writeFrame(w, e) }); err != nil && ctx.Err() == nil {
		// The stream has started: all that can be said is a log line.
		h.log.Warn("resumed stream ended early", "run_id", runID, "err", err)
	}
}

// parseResume returns the index of the last event the client has, -1 for
// none: last_event_index from a POST body (JSON or form), else the
// Last-Event-ID header.
func parseResume(c *gin.Context) (int, error) {
	if c.Request.Method == http.MethodPost && c.Request.ContentLength != 0 {
		var req resumeRequest
		ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
		switch ct {
		case "application/json":
			if err := json.NewDecoder(c.Request.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
				return 0, BodyError(err)
			}
		case "multipart/form-data", "application/x-www-form-urlencoded", "":
			if ct == "multipart/form-data" {
				if err := c.Request.ParseMultipartForm(1 << 20); err != nil {
					return 0, BodyError(err)
				}
			}
			if v := c.PostForm("last_event_index"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil {
					return 0, Errorf(http.StatusUnprocessableEntity, "last_event_index must be an event index (0 or more), got %q", v)
				}
				req.LastEventIndex = &n
			}
		default:
			return 0, &Error{Status: http.StatusUnsupportedMediaType, Msg: "send last_event_index as application/json or a form"}
		}
		if req.LastEventIndex != nil {
			if *req.LastEventIndex < 0 {
				return 0, Errorf(http.StatusUnprocessableEntity, "last_event_index must be an event index (0 or more), got %d", *req.LastEventIndex)
			}
			return *req.LastEventIndex, nil
		}
	}
	n, ok, err := sse.LastEventID(c.Request)
	if err != nil {
		return 0, &Error{Status: http.StatusUnprocessableEntity, Msg: err.Error()}
	}
	if !ok {
		return -1, nil
	}
	return n, nil
}

func (h *Handler) cancelRun(typ string) handlerFunc {
	kind := kindOf(typ)
	return func(c *gin.Context) error {
		m := session.Match{Kind: kind, Name: c.Param("id"), UserID: auth.Of(c).UserID("")}
		ok, err := h.opts.Runs.Cancel(c.Request.Context(), c.Param("run_id"), m)
		if err != nil {
			return fmt.Errorf("cancelling run %s: %w", c.Param("run_id"), err)
		}
		status := "cancelling"
		if !ok {
			// A run paused on tool calls is not in progress anywhere: it
			// ends CANCELLED at once, its pending approvals rejected.
			if p, isPauses := h.opts.Runs.(Pauses); isPauses && typ != session.TypeWorkflow {
				if r, err := h.routeRun(c, typ); err == nil && r.Status == event.StatusPaused {
					if ok, err = p.CancelPaused(c.Request.Context(), r.ID, decider(c)); err != nil {
						return err
					}
					status = "cancelled"
				}
			}
		}
		if !ok {
			return Errorf(http.StatusNotFound, "no run %s of %s %s is in progress", c.Param("run_id"), typ, c.Param("id"))
		}
		c.JSON(http.StatusOK, cancelResponse{RunID: c.Param("run_id"), Status: status})
		return nil
	}
}

// RunLink is the caller's span from its traceparent header: the run's own
// trace links to it (see telemetry.NewTrace) and never joins it. Every
// surface that starts runs reads it alike.
func RunLink(c *gin.Context) session.Link {
	p := traceLink(c)
	return session.Link{TraceID: p.TraceID, SpanID: p.SpanID}
}

// traceHeaders names the run's trace to the client, when it is traced.
func traceHeaders(c *gin.Context, t *session.Turn) {
	if traceID, spanID := t.TraceContext(); traceID != "" {
		c.Header("Traceparent", telemetry.Traceparent(traceID, spanID))
		c.Header("X-Trace-Id", traceID)
	}
}
