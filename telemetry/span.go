package telemetry

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"time"
)

// Span kinds.
const (
	KindRun       = "run"       // an agent or team run (the root, or a member's run)
	KindModel     = "model"     // one model request
	KindTool      = "tool"      // one tool call
	KindKnowledge = "knowledge" // a knowledge search (a knowledge_search tool call)
	KindStore     = "store"     // persisting the run
	KindStep      = "step"      // one workflow step (its agent, team or nested workflow run inside)
	KindGuardrail = "guardrail" // one guardrail's check of a run's input or output
	KindApproval  = "approval"  // a tool call held for a decision, or the decision it got
	KindReasoning = "reasoning" // an agent's reasoning, from ReasoningStarted to ReasoningCompleted, its steps as attributes
)

// Span statuses.
const (
	StatusOK    = "OK"
	StatusError = "ERROR"
)

// Span is one timed operation of a run.
type Span struct {
	TraceID  string    `json:"trace_id"`       // 32 hex digits
	SpanID   string    `json:"span_id"`        // 16 hex digits
	ParentID string    `json:"parent_span_id"` // empty for a root
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	Start    time.Time `json:"start_time"`
	End      time.Time `json:"end_time"`
	Status   string    `json:"status"`
	// StatusMessage says why a span failed (an error class and message).
	StatusMessage string `json:"status_message,omitempty"`

	// Fields every sink indexes, for the trace API's filters.
	RunID     string `json:"run_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	AgentID   string `json:"agent_id,omitempty"`
	TeamID    string `json:"team_id,omitempty"`

	InputTokens  int `json:"input_tokens,omitempty"`
	OutputTokens int `json:"output_tokens,omitempty"`

	// Attributes are bounded key/value details: model, provider, tool name,
	// truncated arguments and results, spec version, error class. Never
	// secrets or header values.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Duration is End − Start.
func (s *Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// NewTraceID returns a W3C trace id that starts with the time: 6 bytes of
// Unix milliseconds, then 10 random bytes (as UUIDv7 does; AWS X-Ray ids also
// lead with the time). Stores that index trace ids then add each new trace
// next to the last one instead of at a random place: with SQLite that is the
// difference between rewriting one index page per batch and one per trace
// (each a 4 KiB WAL frame). The random part keeps ids unique and satisfies
// W3C's rule that the right-most 7 bytes be random.
func NewTraceID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	binary.LittleEndian.PutUint64(b[6:14], rand.Uint64())
	binary.LittleEndian.PutUint16(b[14:16], uint16(rand.Uint32()))
	return hex.EncodeToString(b[:])
}

// NewSpanID returns a random W3C span id.
func NewSpanID() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], nonZero())
	return hex.EncodeToString(b[:])
}

// nonZero draws from the runtime's ChaCha8 generator (seeded from the OS):
// ids must be unique, not secret, and a syscall per span (crypto/rand) is a
// measurable share of a run's cost. W3C forbids all-zero ids.
func nonZero() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

// Parent is a caller's span, from an incoming traceparent header. A run
// links to it (see NewTrace); it never becomes the run's trace.
type Parent struct {
	TraceID string
	SpanID  string
}

// ParseTraceparent reads a W3C traceparent header
// ("00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"). ok is false for a
// missing or invalid header, including all-zero ids, as the spec requires.
func ParseTraceparent(h string) (p Parent, ok bool) {
	parts := strings.Split(strings.TrimSpace(h), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return Parent{}, false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return Parent{}, false
	}
	for _, s := range parts[:4] {
		if !isLowerHex(s) {
			return Parent{}, false
		}
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return Parent{}, false
	}
	return Parent{TraceID: parts[1], SpanID: parts[2]}, true
}

// Traceparent formats a traceparent header for a span (sampled).
func Traceparent(traceID, spanID string) string { return "00-" + traceID + "-" + spanID + "-01" }

func isLowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Sink stores spans. Implementations must be safe for concurrent use; Write
// is called by the recorder's single flusher with batches.
type Sink interface {
	Write(ctx context.Context, spans []Span) error
}

// TraceQuery filters and pages traces.
type TraceQuery struct {
	RunID, SessionID, UserID, AgentID, TeamID string
	Status                                    string // OK or ERROR
	StartTime, EndTime                        time.Time
	Limit, Page                               int // Page from 1
}

// TraceSummary is one trace in a list.
type TraceSummary struct {
	TraceID    string        `json:"trace_id"`
	Name       string        `json:"name"`
	Status     string        `json:"status"`
	Duration   time.Duration `json:"-"`
	StartTime  time.Time     `json:"start_time"`
	EndTime    time.Time     `json:"end_time"`
	TotalSpans int           `json:"total_spans"`
	ErrorCount int           `json:"error_count"`
	Input      string        `json:"input"`
	RunID      string        `json:"run_id"`
	SessionID  string        `json:"session_id"`
	UserID     string        `json:"user_id"`
	AgentID    string        `json:"agent_id"`
	TeamID     string        `json:"team_id"`
}

// ErrUnavailable is wrapped by sinks and readers whose store cannot be
// reached right now (a ClickHouse server that is down, say); the trace API
// answers 503 for it.
var ErrUnavailable = errors.New("trace store unavailable")

// Reader answers the trace API from wherever spans are stored. The same
// shapes come back from every sink.
type Reader interface {
	// ListTraces returns trace summaries, newest first, and the total count.
	ListTraces(ctx context.Context, q TraceQuery) ([]TraceSummary, int, error)
	// GetTrace returns every span of a trace ordered by start time; an empty
	// slice when the trace does not exist.
	GetTrace(ctx context.Context, traceID string) ([]Span, error)
}

// InputAttribute is the root span attribute holding the run's input
// (truncated), shown in trace lists.
const InputAttribute = "input"

// RootAttribute marks, with the value "true", the span of the run a trace
// was started for: sinks show their summary of a trace from it, even when a
// caller's spans (with an earlier start) join the trace.
const RootAttribute = "troupe.root"

// LinkTraceIDAttribute and LinkSpanIDAttribute hold, on a run's root span,
// the caller's trace and span from its traceparent header: the run's trace
// links to the caller's (as an OpenTelemetry span link does) without joining
// it, so the caller's ids never decide who may read the run's trace.
const (
	LinkTraceIDAttribute = "link.trace_id"
	LinkSpanIDAttribute  = "link.span_id"
)

// LinkKindAttribute says, on a root span with a link, what it links to:
// LinkEarlier for the earlier execution of the same workflow run (its
// previous trace); absent for the caller's span from a traceparent, which
// OTLP export makes the run's parent (see package otlp).
const (
	LinkKindAttribute = "link.kind"
	LinkEarlier       = "earlier"
)
