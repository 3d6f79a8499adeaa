package console

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/telemetry"
)

// traceParent reads an incoming traceparent header so the run's trace joins
// the caller's.
func traceParent(c *gin.Context) telemetry.Parent {
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
	q := telemetry.TraceQuery{RunID: c.Query("run_id"), SessionID: c.Query("session_id"), UserID: getPrincipal(c).userID(c.Query("user_id")),
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

func (s *Server) getTrace(c *gin.Context) {
	spans, err := s.opts.Traces.GetTrace(c.Request.Context(), c.Param("trace_id"))
	if err != nil {
		s.traceError(c, err)
		return
	}
	if len(spans) == 0 {
		abort(c, http.StatusNotFound, "trace not found (traces are written within a second or two of a run's end)")
		return
	}
	// A key bound to a user sees only that user's traces.
	if u := getPrincipal(c).userID(""); u != "" && !slices.ContainsFunc(spans, func(sp telemetry.Span) bool { return sp.UserID == u }) {
		abort(c, http.StatusNotFound, "trace not found")
		return
	}
	nodes := make(map[string]*spanNode, len(spans))
	for i := range spans {
		nodes[spans[i].SpanID] = &spanNode{Span: spans[i], DurationMS: float64(spans[i].Duration().Microseconds()) / 1000, Spans: []*spanNode{}}
	}
	var roots []*spanNode
	summary := telemetry.TraceSummary{TraceID: c.Param("trace_id"), TotalSpans: len(spans)}
	for i := range spans {
		n := nodes[spans[i].SpanID]
		if p, ok := nodes[spans[i].ParentID]; ok && spans[i].ParentID != "" {
			p.Spans = append(p.Spans, n)
		} else {
			roots = append(roots, n)
		}
		if spans[i].Status == telemetry.StatusError {
			summary.ErrorCount++
		}
	}
	if len(roots) > 0 {
		r := roots[0].Span
		summary.Name, summary.Status, summary.StartTime, summary.EndTime, summary.Duration = r.Name, r.Status, r.Start, r.End, r.Duration()
		summary.RunID, summary.SessionID, summary.UserID, summary.AgentID, summary.TeamID = r.RunID, r.SessionID, r.UserID, r.AgentID, r.TeamID
		summary.Input = r.Attributes[telemetry.InputAttribute]
	}
	c.JSON(http.StatusOK, gin.H{"trace": toTraceSummary(summary), "tree": roots})
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
	days, err := s.opts.Store.DailyMetrics(c.Request.Context(), from, to.Add(24*time.Hour-time.Nanosecond))
	if err != nil {
		s.respondError(c, err)
		return
	}
	out := make([]gin.H, len(days))
	for i, d := range days {
		models := make([]gin.H, len(d.Models))
		for j, m := range d.Models {
			models[j] = gin.H{"model_id": m.Model, "model_provider": m.Provider, "count": m.Runs, "input_tokens": m.InputTokens, "output_tokens": m.OutputTokens}
		}
		out[i] = gin.H{"date": d.Date, "agent_runs_count": d.AgentRuns, "team_runs_count": d.TeamRuns, "agent_runs": d.AgentRuns, "team_runs": d.TeamRuns,
			"sessions_count": d.Sessions, "users_count": d.Users,
			"token_metrics": gin.H{"input_tokens": d.InputTokens, "output_tokens": d.OutputTokens, "total_tokens": d.TotalTokens},
			"model_metrics": models}
	}
	c.JSON(http.StatusOK, gin.H{"metrics": out, "updated_at": time.Now().UTC()})
}
