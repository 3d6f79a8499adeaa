// Package sse writes server-sent event streams: frames flushed as they are
// written, heartbeat comments that keep idle streams open through proxies,
// and the count of streams open at once. The run routes, the OpenAI surface
// and the console's chat and reload events all stream through it; what goes
// into the frames is theirs.
package sse

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HeartbeatInterval is how often a stream that may sit idle sends a
// Heartbeat: proxies commonly close connections silent for 30 to 60 seconds.
const HeartbeatInterval = 25 * time.Second

// Counter counts the event streams open at once (telemetry.Metrics does).
// Its methods are called from many requests at once.
type Counter interface {
	StreamOpened()
	StreamClosed()
}

// Streams opens event streams, each counted while it is open. A nil
// *Streams, or one without a Counter, counts nothing.
type Streams struct {
	counter Counter
}

// NewStreams returns Streams counted by c; c may be nil.
func NewStreams(c Counter) *Streams { return &Streams{counter: c} }

// nothing is the close func of an uncounted stream.
func nothing() {}

// Open starts an event stream answering w: it sends the headers and 200 at
// once. The stream is counted until the returned func is called, which the
// caller must do when the stream ends.
func (s *Streams) Open(w http.ResponseWriter) (*Writer, func()) {
	if s == nil || s.counter == nil {
		return NewWriter(w), nothing
	}
	s.counter.StreamOpened()
	return NewWriter(w), s.counter.StreamClosed
}

// Writer writes server-sent events to one response, flushing each frame so
// tokens reach the client as they are generated. Safe for concurrent use:
// team members emit concurrently.
type Writer struct {
	mu      sync.Mutex
	w       *bufio.Writer
	flusher http.Flusher
	err     error
}

// NewWriter sends the headers of an event stream with 200 and returns its
// writer. Most callers want Streams.Open, which also counts the stream.
func NewWriter(w http.ResponseWriter) *Writer {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &Writer{w: bufio.NewWriterSize(w, 4096), flusher: f}
}

// Event sends one frame, "event: name\ndata: json\n\n", or a data-only frame
// when name is empty. After a failed write (a client that went away) every
// write returns that error; the request's context cancellation ends the
// producer.
func (s *Writer) Event(name string, v any) error { return s.EventID("", name, v) }

// EventID sends one frame with an id line, "id: id\nevent: name\ndata:
// json\n\n", or no id line when id is empty. A browser's EventSource
// sends the last id it received as Last-Event-ID when it reconnects, which
// is how a resumed stream knows where to start.
func (s *Writer) EventID(id, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if id != "" {
		s.w.WriteString("id: ")
		s.w.WriteString(id)
		s.w.WriteByte('\n')
	}
	if name != "" {
		s.w.WriteString("event: ")
		s.w.WriteString(name)
		s.w.WriteByte('\n')
	}
	s.w.WriteString("data: ")
	s.w.Write(data)
	s.w.WriteString("\n\n")
	return s.flushLocked()
}

// Comment sends an SSE comment line, which clients ignore.
func (s *Writer) Comment(text string) error { return s.frame(": " + text + "\n\n") }

// Heartbeat sends the comment that keeps an idle stream open through
// proxies; send one every HeartbeatInterval.
func (s *Writer) Heartbeat() error { return s.Comment("ping") }

// Heartbeats sends a Heartbeat every interval until ctx ends or a write
// fails. Its caller runs it in a goroutine that it cancels and waits for
// when the stream ends.
func (s *Writer) Heartbeats(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.Heartbeat() != nil {
				return
			}
		}
	}
}

// LastEventID reads the Last-Event-ID header that an EventSource sends when
// it reconnects: the index of the last event the client received (see
// EventID). ok is false when the header is absent; a value that is not an
// index is an error.
func LastEventID(r *http.Request) (idx int, ok bool, err error) {
	v := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("Last-Event-ID must be the index of an event (0 or more), got %q", v)
	}
	return n, true, nil
}

// Data sends a data-only frame with literal content (OpenAI's [DONE]).
func (s *Writer) Data(data string) error { return s.frame("data: " + strings.TrimSpace(data) + "\n\n") }

// frame writes one whole frame and flushes it, unless a write failed before.
func (s *Writer) frame(f string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.w.WriteString(f)
	return s.flushLocked()
}

// flushLocked sends what is buffered to the client; s.mu is held.
func (s *Writer) flushLocked() error {
	if s.err = s.w.Flush(); s.err != nil {
		return s.err
	}
	if s.flusher != nil {
		s.flusher.Flush()
	}
	return nil
}
