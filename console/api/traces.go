package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/telemetry"
)

// traceLink reads an incoming traceparent header, which the run's trace
// links to. It never decides which trace the run's spans go to, nor who may
// read them: the header is the caller's to write.
func traceLink(c *gin.Context) telemetry.Parent {
	p, _ := telemetry.ParseTraceparent(c.GetHeader("Traceparent"))
	return p
}

type traceSummary struct {
	telemetry.TraceSummary
	Duration string `json:"duration"` // like "1.25s", as AgentOS shows it
	// DurationMS is the same, machine-readable.
	DurationMS float64 `json:"duration_ms"`
}

func toTraceSummary(t telemetry.TraceSummary) traceSummary {
	return traceSummary{TraceSummary: t, Duration: t.Duration.Round(time.Microsecond).String(), DurationMS: float64(t.Duration.Microseconds()) / 1000}
}

// spanNode is a span with its children, for the trace tree.
type spanNode struct {
	telemetry.Span
	DurationMS float64     `json:"duration_ms"`
	Spans      []*spanNode `json:"spans"`
}

func (h *Handler) listTraces(c *gin.Context) error {
	q := telemetry.TraceQuery{RunID: c.Query("run_id"), SessionID: c.Query("session_id"), UserID: auth.Of(c).UserID(c.Query("user_id")),
		AgentID: c.Query("agent_id"), TeamID: c.Query("team_id"), Status: c.Query("status")}
	var err error
	if q.Limit, q.Page, err = paging(c); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		into *time.Time
	}{{"start_time", &q.StartTime}, {"end_time", &q.EndTime}} {
		if v := c.Query(f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return &Error{Status: http.StatusUnprocessableEntity, Msg: f.name + " must be an RFC 3339 time, like 2026-11-21T09:00:00Z"}
			}
			*f.into = t
		}
	}
	if q.Status != "" && q.Status != telemetry.StatusOK && q.Status != telemetry.StatusError {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "status must be OK or ERROR"}
	}
	traces, total, err := h.opts.Traces.ListTraces(c.Request.Context(), q)
	if err != nil {
		return err
	}
	out := paged[traceSummary]{Data: make([]traceSummary, len(traces)), Meta: newPageMeta(q.Page, q.Limit, total)}
	for i, t := range traces {
		out.Data[i] = toTraceSummary(t)
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// LoadTrace reads a trace the caller may see: a key bound to a user sees only
// traces that user owns, and of those only that user's spans. found is false
// when there is no such trace.
//
// A trace belongs to the user of its root run (traceOwner), not to whoever
// has a span in it: traces stored before runs stopped joining their callers'
// traces can hold spans of several users, and one such span must not open
// another user's trace.
func LoadTrace(ctx context.Context, r telemetry.Reader, p auth.Principal, traceID string) (spans []telemetry.Span, found bool, err error) {
	spans, err = r.GetTrace(ctx, traceID)
	if err != nil || len(spans) == 0 {
		return nil, false, err
	}
	if u := p.UserID(""); u != "" {
		if traceOwner(spans) != u {
			return nil, false, nil
		}
		spans = slices.DeleteFunc(spans, func(sp telemetry.Span) bool { return sp.UserID != u })
	}
	return spans, true, nil
}

// traceOwner returns the user of a trace's root run, chosen as the stores
// choose the root of a summary (see store.Traces): the earliest span marked
// telemetry.RootAttribute, else the earliest without a parent in the trace.
// spans come ordered by start time.
func traceOwner(spans []telemetry.Span) string {
	if i := slices.IndexFunc(spans, func(sp telemetry.Span) bool { return sp.Attributes[telemetry.RootAttribute] == "true" }); i >= 0 {
		return spans[i].UserID
	}
	ids := make(map[string]bool, len(spans))
	for _, sp := range spans {
		ids[sp.SpanID] = true
	}
	for _, sp := range spans {
		if !ids[sp.ParentID] {
			return sp.UserID
		}
	}
	return spans[0].UserID
}

// TraceTree links a trace's spans to their parents; the trace API and the
// console's waterfall both walk it.
type TraceTree struct {
	Spans    []telemetry.Span
	Children map[string][]int // span id → its children, in the spans' order
	Roots    []int            // spans whose parent is not in the trace
	Summary  telemetry.TraceSummary
}

// NewTraceTree builds the tree and the trace's summary, which describes its
// first root (spans come ordered by start time).
func NewTraceTree(traceID string, spans []telemetry.Span) TraceTree {
	t := TraceTree{Spans: spans, Children: map[string][]int{}, Summary: telemetry.TraceSummary{TraceID: traceID, TotalSpans: len(spans)}}
	ids := make(map[string]bool, len(spans))
	for _, sp := range spans {
		ids[sp.SpanID] = true
	}
	for i, sp := range spans {
		if sp.ParentID != "" && ids[sp.ParentID] {
			t.Children[sp.ParentID] = append(t.Children[sp.ParentID], i)
		} else {
			t.Roots = append(t.Roots, i)
		}
		if sp.Status == telemetry.StatusError {
			t.Summary.ErrorCount++
		}
	}
	if len(t.Roots) > 0 {
		r := spans[t.Roots[0]]
		t.Summary.Name, t.Summary.Status, t.Summary.StartTime, t.Summary.EndTime, t.Summary.Duration = r.Name, r.Status, r.Start, r.End, r.Duration()
		t.Summary.RunID, t.Summary.SessionID, t.Summary.UserID, t.Summary.AgentID, t.Summary.TeamID = r.RunID, r.SessionID, r.UserID, r.AgentID, r.TeamID
		t.Summary.Input = r.Attributes[telemetry.InputAttribute]
	}
	return t
}

// node returns span i with its descendants, for the JSON tree.
func (t TraceTree) node(i int) *spanNode {
	sp := t.Spans[i]
	n := &spanNode{Span: sp, DurationMS: float64(sp.Duration().Microseconds()) / 1000, Spans: []*spanNode{}}
	for _, c := range t.Children[sp.SpanID] {
		n.Spans = append(n.Spans, t.node(c))
	}
	return n
}

func (h *Handler) getTrace(c *gin.Context) error {
	spans, found, err := LoadTrace(c.Request.Context(), h.opts.Traces, auth.Of(c), c.Param("trace_id"))
	if err != nil {
		return err
	}
	if !found {
		return &Error{Status: http.StatusNotFound, Msg: "trace not found (a run's trace is readable at once on the replica that ran it, within a second or two on the others)"}
	}
	t := NewTraceTree(c.Param("trace_id"), spans)
	roots := make([]*spanNode, len(t.Roots))
	for i, r := range t.Roots {
		roots[i] = t.node(r)
	}
	c.JSON(http.StatusOK, traceResponse{Trace: toTraceSummary(t.Summary), Tree: roots})
	return nil
}

// dailyMetrics answers GET /metrics with AgentOS-style daily aggregates of
// runs, sessions, users and tokens per model.
func (h *Handler) dailyMetrics(c *gin.Context) error {
	to := time.Now().UTC()
	from := to.AddDate(0, 0, -30)
	for _, f := range []struct {
		name string
		into *time.Time
	}{{"starting_date", &from}, {"ending_date", &to}} {
		if v := c.Query(f.name); v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				return &Error{Status: http.StatusUnprocessableEntity, Msg: f.name + " must be a date like 2026-11-21"}
			}
			*f.into = t
		}
	}
	if from.After(to) {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "starting_date must not be after ending_date"}
	}
	days, err := h.opts.Store.DailyMetrics(c.Request.Context(), from, to.Add(24*time.Hour-time.Nanosecond))
	if err != nil {
		return err
	}
	out := make([]dayMetrics, len(days))
	for i, d := range days {
		models := make([]modelMetrics, len(d.Models))
		for j, m := range d.Models {
			models[j] = modelMetrics{ModelID: m.Model, ModelProvider: m.Provider, Count: m.Runs, InputTokens: m.InputTokens, OutputTokens: m.OutputTokens, Cost: m.Cost}
		}
		out[i] = dayMetrics{Date: d.Date, AgentRunsCount: d.AgentRuns, TeamRunsCount: d.TeamRuns, AgentRuns: d.AgentRuns, TeamRuns: d.TeamRuns,
			SessionsCount: d.Sessions, UsersCount: d.Users,
			TokenMetrics: tokenMetrics{InputTokens: d.InputTokens, OutputTokens: d.OutputTokens, TotalTokens: d.TotalTokens, Cost: d.Cost},
			ModelMetrics: models}
	}
	c.JSON(http.StatusOK, dailyMetricsResponse{Metrics: out, UpdatedAt: time.Now().UTC()})
	return nil
}
