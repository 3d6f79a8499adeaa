package console

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine/event"
)

// sseEvent is the JSON of one streamed run event, in AgentOS's shape: the event
// name is both on the SSE "event:" line and in the JSON.
type sseEvent struct {
	Event         string            `json:"event"`
	CreatedAt     int64             `json:"created_at"`
	RunID         string            `json:"run_id"`
	SessionID     string            `json:"session_id,omitempty"`
	AgentID       string            `json:"agent_id,omitempty"`
	AgentName     string            `json:"agent_name,omitempty"`
	TeamID        string            `json:"team_id,omitempty"`
	TeamName      string            `json:"team_name,omitempty"`
	Member        string            `json:"member,omitempty"`
	Depth         int               `json:"depth,omitempty"`
	Model         string            `json:"model,omitempty"`
	ModelProvider string            `json:"model_provider,omitempty"`
	Content       *string           `json:"content,omitempty"`
	ContentType   string            `json:"content_type,omitempty"`
	Tool          *toolResponse     `json:"tool,omitempty"`
	Metrics       *metricsResponse  `json:"metrics,omitempty"`
	ErrorType     string            `json:"error_type,omitempty"`
	References    []event.Reference `json:"references,omitempty"`
	// Tools and ExtraData complete RunCompleted as AgentOS's does: every
	// tool call of the run, and the references in Agent UI's shape.
	Tools     []toolResponse `json:"tools,omitempty"`
	ExtraData *extraData     `json:"extra_data,omitempty"`
}

// eventName returns the AgentOS name of an event: a team run's own events are
// prefixed with Team; its members' events keep their own names.
func eventName(e event.Event) string {
	if e.TeamID != "" && e.AgentID == "" {
		return "Team" + string(e.Type)
	}
	return string(e.Type)
}

func toSSE(e event.Event) sseEvent {
	out := sseEvent{
		Event: eventName(e), CreatedAt: e.CreatedAt.Unix(), RunID: e.RunID, SessionID: e.SessionID,
		AgentID: e.AgentID, AgentName: e.AgentID, TeamID: e.TeamID, TeamName: e.TeamID,
		Member: e.Member, Depth: e.Depth, Model: e.Model, ModelProvider: e.Provider, ErrorType: e.ErrorKind,
	}
	switch e.Type {
	case event.RunContent, event.RunCompleted:
		c := e.Content
		out.Content, out.ContentType = &c, "str"
	case event.RunError, event.RunCancelled:
		c := e.Content
		out.Content = &c
	}
	out.References = e.References
	if e.Type == event.RunCompleted {
		out.ExtraData = toExtraData(e.References)
		if len(e.Tools) > 0 {
			out.Tools = toTools(e.Tools)
		}
	}
	if e.Tool != nil {
		t := toTool(*e.Tool)
		out.Tool = &t
	}
	if e.Metrics != nil && (e.Type == event.RunCompleted || e.Type == event.ModelRequestCompleted || e.Type == event.RunError) {
		m := toMetrics(*e.Metrics)
		out.Metrics = &m
	}
	return out
}

// sseWriter writes server-sent events to one response, flushing each frame so
// tokens reach the client as they are generated. Safe for concurrent use.
type sseWriter struct {
	mu      sync.Mutex
	w       *bufio.Writer
	flusher http.Flusher
	err     error
}

// openStream starts an event stream answering c, counted as an active
// stream until the returned func is called.
func (s *Server) openStream(c *gin.Context) (*sseWriter, func()) {
	if s.opts.Metrics == nil {
		return newSSEWriter(c.Writer), func() {}
	}
	s.opts.Metrics.StreamOpened()
	return newSSEWriter(c.Writer), s.opts.Metrics.StreamClosed
}

func newSSEWriter(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sseWriter{w: bufio.NewWriterSize(w, 4096), flusher: f}
}

// write sends one frame: "event: name\ndata: json\n\n". Errors (a client that
// went away) are remembered; the run's context cancellation handles the rest.
func (s *sseWriter) write(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if name != "" {
		s.w.WriteString("event: ")
		s.w.WriteString(name)
		s.w.WriteByte('\n')
	}
	s.w.WriteString("data: ")
	s.w.Write(data)
	s.w.WriteString("\n\n")
	if err := s.w.Flush(); err != nil {
		s.err = err
		return err
	}
	if s.flusher != nil {
		s.flusher.Flush()
	}
	return nil
}

// comment sends an SSE comment line, which keeps idle connections open
// through proxies.
func (s *sseWriter) comment(text string) error { return s.frame(": " + text + "\n\n") }

// writeRaw sends a data-only frame with literal content (the OpenAI [DONE]).
func (s *sseWriter) writeRaw(data string) { _ = s.frame("data: " + strings.TrimSpace(data) + "\n\n") }

// frame writes one whole frame and flushes it, unless a write failed before.
func (s *sseWriter) frame(f string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.w.WriteString(f)
	if s.err = s.w.Flush(); s.err == nil && s.flusher != nil {
		s.flusher.Flush()
	}
	return s.err
}
