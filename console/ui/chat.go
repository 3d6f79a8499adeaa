package ui

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/a-h/templ"
	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/console/sse"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// chat runs one turn for the console's chat pane. It is the run endpoint's
// data path (the run service: same validation, persistence, tracing and metrics)
// with a different presentation: each event becomes an HTML fragment,
// rendered by the same components as the pages, sent as a server-sent event
// that the pane's script applies (see web/static/troupe.js):
//
//	start   {run, session, h}  a new turn: the message and an empty answer
//	text    {t, s}             answer text to append to element t
//	append  {t, h}             HTML to append to element t (tool cards, members)
//	replace {t, h}             HTML replacing element t (finished tool cards)
//	end     {t, h}             the outcome and numbers, appended to element t
//
// Answers stream in as plain text and are replaced, once complete, by
// their Markdown rendered here (view.Markdown), so the page's script needs
// no Markdown of its own.
func (h *Handler) chat(typ string) gin.HandlerFunc {
	kind := kindOf(typ)
	return func(c *gin.Context) {
		message := strings.TrimSpace(c.PostForm("message"))
		if message == "" {
			c.Data(http.StatusUnprocessableEntity, "text/plain; charset=utf-8", []byte("Type a message first."))
			return
		}
		p := auth.Of(c)
		params := session.Params{Kind: kind, Name: c.Param("id"), Message: message,
			SessionID: c.PostForm("session_id"), UserID: p.UserID(""), Stream: true, BoundUser: p.Bound()}
		uploads, err := api.FormUploads(c.Request.MultipartForm, h.opts.FileLimits)
		if err == nil && len(uploads) > 0 {
			params.Files, err = files.Check(uploads, h.opts.FileLimits)
		}
		if err != nil {
			h.fail(c, "the files", err)
			return
		}
		turn, err := h.opts.Runs.Start(c.Request.Context(), params)
		if err != nil {
			h.fail(c, "the run", err)
			return
		}
		runID, sessionID := turn.RunID(), turn.SessionID()
		ratelimit.Started(c, runID)
		w, closed := h.opts.Streams.Open(c.Writer)
		defer closed()
		st := &chatStream{w: w, ctx: c.Request.Context(), run: runID, members: map[string]string{}}
		st.send("start", map[string]string{"run": runID, "session": sessionID, "h": st.html(view.ChatTurn(runID, message))})
		h.streamTurn(c, st, turn, typ)
	}
}

// streamTurn executes turn, sending its events to the chat pane; a turn
// that pauses ends with its held calls and, for a principal who may decide
// them, the form that continues it (continueChat).
func (h *Handler) streamTurn(c *gin.Context, st *chatStream, turn *session.Turn, typ string) {
	runID, sessionID := turn.RunID(), turn.SessionID()
	traceURL := ""
	if traceID, _ := turn.TraceContext(); traceID != "" {
		traceURL = "/ui/traces/" + traceID
	}
	turn.Execute(st.ctx, func(e event.Event) {
		if e.Depth == 0 && e.Type.Terminal() {
			u := view.ChatUsage{RunID: runID, SessionID: sessionID, TraceURL: traceURL, SessionLink: true, Status: string(e.Type.Status())}
			if e.Metrics != nil {
				u.Metrics = *e.Metrics
			}
			switch e.Type {
			case event.RunError:
				u.Error = e.Content
			case event.RunCancelled:
				u.Error = "Cancelled."
			}
			if e.Type == event.RunCompleted && e.Content != "" {
				// The answer streamed in as plain text; now that it is
				// whole, show it as the session page does: Markdown.
				st.send("replace", map[string]string{"t": "a-" + runID, "h": st.html(view.ChatAnswer("a-"+runID, e.Content))})
			}
			out := st.html(view.ChatEnd(u))
			if e.Type == event.RunPaused {
				out += st.html(view.ChatHeld(h.held(c, typ, runID, e.Paused)))
			}
			st.send("end", map[string]string{"t": "m-" + runID, "h": out})
			return
		}
		st.event(e)
	})
}

func kindOf(typ string) spec.Kind {
	if typ == "team" {
		return spec.KindTeam
	}
	return spec.KindAgent
}

type chatStream struct {
	w   *sse.Writer
	ctx context.Context
	run string
	// mu orders a member's block before its events: members of coordinate
	// and broadcast teams emit concurrently.
	mu      sync.Mutex
	members map[string]string // member name → the id of its block
}

func (st *chatStream) send(name string, data map[string]string) { _ = st.w.Event(name, data) }

func (st *chatStream) html(c templ.Component) string {
	var b strings.Builder
	_ = c.Render(st.ctx, &b)
	return b.String()
}

// block returns the element id prefix for an event's author: the run itself,
// or a team member's block, opened on the member's first event.
func (st *chatStream) block(e event.Event) string {
	if e.Depth == 0 || e.Member == "" {
		return st.run
	}
	id, ok := st.members[e.Member]
	if !ok {
		id = st.run + "-m" + strconv.Itoa(len(st.members))
		st.members[e.Member] = id
		st.send("append", map[string]string{"t": "s-" + st.run, "h": st.html(view.ChatMember(id, e.Member))})
	}
	return id
}

func (st *chatStream) event(e event.Event) {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch e.Type {
	case event.RunStarted:
		st.block(e)
	case event.RunContent:
		if e.Content != "" {
			st.send("text", map[string]string{"t": "a-" + st.block(e), "s": e.Content})
		}
	case event.RunCompleted:
		// A team member's answer is whole: Markdown, as the stream's own
		// answer at its end (streamTurn).
		if e.Depth > 0 && e.Member != "" && e.Content != "" {
			b := st.block(e)
			st.send("replace", map[string]string{"t": "a-" + b, "h": st.html(view.MemberAnswer("a-"+b, e.Content))})
		}
	case event.ToolCallStarted:
		if e.Tool != nil {
			b := st.block(e)
			st.send("append", map[string]string{"t": "s-" + b, "h": st.html(view.ToolCard(b, *e.Tool, false))})
		}
	case event.ToolCallCompleted, event.ToolCallError:
		if e.Tool != nil {
			b := st.block(e)
			st.send("replace", map[string]string{"t": view.ToolCardID(b, e.Tool.ID), "h": st.html(view.ToolCard(b, *e.Tool, true))})
		}
	case event.ReasoningStarted:
		b := st.block(e)
		st.send("append", map[string]string{"t": "s-" + b, "h": st.html(view.ChatReasoning(b, nil, false))})
	case event.ReasoningContentDelta:
		st.send("text", map[string]string{"t": view.ReasoningID(st.block(e)) + "-live", "s": e.ReasoningContent})
	case event.ReasoningStep:
		if e.Reasoning != nil {
			b := view.ReasoningID(st.block(e))
			if e.Reasoning.Source == event.ReasoningNative {
				// The streamed text is now a step of its own.
				st.send("replace", map[string]string{"t": b + "-live", "h": st.html(view.ReasoningLive(st.block(e)))})
			}
			st.send("append", map[string]string{"t": b + "-steps", "h": st.html(view.ReasoningStep(*e.Reasoning))})
		}
	case event.ReasoningCompleted:
		b := st.block(e)
		st.send("replace", map[string]string{"t": view.ReasoningID(b), "h": st.html(view.ChatReasoning(b, e.ReasoningSteps, true))})
	}
}
