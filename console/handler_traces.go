package console

import (
	"errors"
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

// traceError answers 503 when the trace store cannot be reached, so clients
// know to retry; other errors as usual.
func (s *Server) traceError(c *gin.Context, err error) {
	if errors.Is(err, telemetry.ErrUnavailable) {
		abort(c, http.StatusServiceUnavailable, "the trace store cannot be reached right now; spans are dropped until it is back (see troupe_trace_spans_dropped_total): "+err.Error())
		return
	}
	s.respondError(c, err)
}

// spanNode is a span with its children, for the trace tree.
type spanNode struct {
	telemetry.Span
	DurationMS float64     `json:"duration_ms"`
	Spans      []*spanNode `json:"spans"`
}

func (s *Server) listTraces(c *gin.Context) {
	q := telemetry.TraceQuery{RunID: c.Query("run_id"), SessionID: c.Query("session_id"), UserID: auth.Of(c).UserID(c.Query("user_id")),
		AgentID: c.Query("agent_id"), TeamID: c.Query("team_id"), Status: c.Query("status")}
	var err error
	if q.Limit, q.Page, err = paging(c); err != nil {
		s.respondError(c, err)
		return
	}
	for _, f := range []struct {
		name string
		into *time.Time
	}{{"start_time", &q.StartTime}, {"end_time", &q.EndTime}} {
		if v := c.Query(f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				abort(c, http.StatusUnprocessableEntity, f.name+" must be an RFC 3339 time, like 2026-11-21T09:00:00Z")
				return
			}
			*f.into = t
		}
	}
	if q.Status != "" && q.Status != telemetry.StatusOK && q.Status != telemetry.StatusError {
		abort(c, http.StatusUnprocessableEntity, "status must be OK or ERROR")
		return
	}
	traces, total, err := s.opts.Traces.ListTraces(c.Request.Context(), q)
	if err != nil {
		s.traceError(c, err)
		return
	}
	out := paged[traceSummary]{Data: make([]traceSummary, len(traces)), Meta: newPageMeta(q.Page, q.Limit, total)}
	for i, t := range traces {
		out.Data[i] = toTraceSummary(t)
	}
	c.JSON(http.StatusOK, out)
}

// loadTrace reads a trace the caller may see: a key bound to a user sees only
// traces that user owns, and of those only that user's spans. found is false
// when there is no such trace.
//
// A trace belongs to the user of its root run (traceOwner), not to whoever
// has a span in it: traces stored before runs stopped joining their callers'
// traces can hold spans of several users, and one such span must not open
// another user's trace.
func (s *Server) loadTrace(c *gin.Context, traceID string) (spans []telemetry.Span, found bool, err error) {
	spans, err = s.opts.Traces.GetTrace(c.Request.Context(), traceID)
	if err != nil || len(spans) == 0 {
		return nil, false, err
	}
	if u := auth.Of(c).UserID(""); u != "" {
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

// traceTree links a trace's spans to their parents; the trace API and the
// console's waterfall both walk it.
type traceTree struct {
	spans    []telemetry.Span
	children map[string][]int // span id → its children, in the spans' order
	roots    []int            // spans whose parent is not in the trace
	summary  telemetry.TraceSummary
}

// newTraceTree builds the tree and the trace's summary, which describes its
// first root (spans come ordered by start time).
func newTraceTree(traceID string, spans []telemetry.Span) traceTree {
	t := traceTree{spans: spans, children: map[string][]int{}, summary: telemetry.TraceSummary{TraceID: traceID, TotalSpans: len(spans)}}
	ids := make(map[string]bool, len(spans))
	for _, sp := range spans {
		ids[sp.SpanID] = true
	}
	for i, sp := range spans {
		if sp.ParentID != "" && ids[sp.ParentID] {
			t.children[sp.ParentID] = append(t.children[sp.ParentID], i)
		} else {
			t.roots = append(t.roots, i)
		}
		if sp.Status == telemetry.StatusError {
			t.summary.ErrorCount++
		}
	}
	if len(t.roots) > 0 {
		r := spans[t.roots[0]]
		t.summary.Name, t.summary.Status, t.summary.StartTime, t.summary.EndTime, t.summary.Duration = r.Name, r.Status, r.Start, r.End, r.Duration()
		t.summary.RunID, t.summary.SessionID, t.summary.UserID, t.summary.AgentID, t.summary.TeamID = r.RunID, r.SessionID, r.UserID, r.AgentID, r.TeamID
		t.summary.Input = r.Attributes[telemetry.InputAttribute]
	}
	return t
}

// node returns span i with its descendants, for the JSON tree.
func (t traceTree) node(i int) *spanNode {
	sp := t.spans[i]
	n := &spanNode{Span: sp, DurationMS: float64(sp.Duration().Microseconds()) / 1000, Spans: []*spanNode{}}
	for _, c := range t.children[sp.SpanID] {
		n.Spans = append(n.Spans, t.node(c))
	}
	return n
}

func (s *Server) getTrace(c *gin.Context) {
	spans, found, err := s.loadTrace(c, c.Param("trace_id"))
	if err != nil {
		s.traceError(c, err)
		return
	}
	if !found {
		abort(c, http.StatusNotFound, "trace not found (traces are written within a second or two of a run's end)")
		return
	}
	t := newTraceTree(c.Param("trace_id"), spans)
	roots := make([]*spanNode, len(t.roots))
	for i, r := range t.roots {
		roots[i] = t.node(r)
	}
	c.JSON(http.StatusOK, traceResponse{Trace: toTraceSummary(t.summary), Tree: roots})
}

// dailyMetrics answers GET /metrics with AgentOS-style daily aggregates of
// runs, sessions, users and tokens per model.
func (s *Server) dailyMetrics(c *gin.Context) {
	to := time.Now().UTC()
	from := to.AddDate(0, 0, -30)
	for _, f := range []struct {
		name string
		into *time.Time
	}{{"starting_date", &from}, {"ending_date", &to}} {
		if v := c.Query(f.name); v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				abort(c, http.StatusUnprocessableEntity, f.name+" must be a date like 2026-11-21")
				return
			}
			*f.into = t
		}
	}
	if from.After(to) {
		abort(c, http.StatusUnprocessableEntity, "starting_date must not be after ending_date")
		return
	}
	days, err := s.opts.Store.DailyMetrics(c.Request.Context(), from, to.Add(24*time.Hour-time.Nanosecond))
	if err != nil {
		s.respondError(c, err)
		return
	}
	out := make([]dayMetrics, len(days))
	for i, d := range days {
		models := make([]modelMetrics, len(d.Models))
		for j, m := range d.Models {
			models[j] = modelMetrics{ModelID: m.Model, ModelProvider: m.Provider, Count: m.Runs, InputTokens: m.InputTokens, OutputTokens: m.OutputTokens}
		}
		out[i] = dayMetrics{Date: d.Date, AgentRunsCount: d.AgentRuns, TeamRunsCount: d.TeamRuns, AgentRuns: d.AgentRuns, TeamRuns: d.TeamRuns,
			SessionsCount: d.Sessions, UsersCount: d.Users,
			TokenMetrics: tokenMetrics{InputTokens: d.InputTokens, OutputTokens: d.OutputTokens, TotalTokens: d.TotalTokens},
			ModelMetrics: models}
	}
	c.JSON(http.StatusOK, dailyMetricsResponse{Metrics: out, UpdatedAt: time.Now().UTC()})
}
