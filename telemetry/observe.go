package telemetry

import (
	"context"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
)

// Tracer is the run service's tracing: a session.Observer that builds each
// run's trace from its events (see Trace) and hands its spans to a Recorder
// when the run finishes.
type Tracer struct {
	rec     *Recorder
	earlier Reader
	export  []SpanRecorder
	content ContentPolicy
}

// SpanRecorder takes a finished trace's spans, root first, without
// blocking: an exporter beside the trace store (package otlp).
type SpanRecorder interface {
	Record(spans ...Span)
}

// ContentPolicy says whose runs' traces record the conversation (see
// Content).
type ContentPolicy struct {
	// Content is the recording of runs whose agent or team allow it;
	// Content.Enabled false records none.
	Content
	// SkipBoundKeys records none for runs a user-bound API key started
	// (the caller acts as its user), for operators who must not see what
	// their users' conversations say.
	SkipBoundKeys bool
}

// Export makes the tracer hand every trace to r too (an OTLP exporter). It
// returns t.
func (t *Tracer) Export(r SpanRecorder) *Tracer {
	t.export = append(t.export, r)
	return t
}

// RecordContent sets whose runs' traces record the conversation. It returns t.
func (t *Tracer) RecordContent(p ContentPolicy) *Tracer {
	t.content = p
	return t
}

// record hands a finished trace to the store and every exporter.
func (t *Tracer) record(spans []Span) {
	if t.rec != nil {
		t.rec.Record(spans...)
	}
	for _, r := range t.export {
		r.Record(spans...)
	}
}

// NewTracer returns a tracer recording to rec (nil: to its exporters only).
func NewTracer(rec *Recorder) *Tracer { return &Tracer{rec: rec} }

// LinkEarlier makes the tracer link a workflow run's trace to the trace
// of the run's previous execution, read from r: a run continued after a
// pause, or resumed after a crash, executes again under the same run id,
// and its new trace links (LinkTraceIDAttribute, LinkSpanIDAttribute) to
// the root span of the one before. It costs one trace query when a workflow
// run starts without a caller's span. It returns t.
func (t *Tracer) LinkEarlier(r Reader) *Tracer {
	t.earlier = r
	return t
}

// earlierLookup bounds the query for a run's earlier trace: the run starts
// without the link rather than wait.
const earlierLookup = 2 * time.Second

var (
	_ session.Observer    = (*Tracer)(nil)
	_ session.RunObserver = (*runTrace)(nil)
	_ session.Traced      = (*runTrace)(nil)
	_ session.Observer    = (*Metrics)(nil)
	_ session.RunObserver = metricsRun{}
)

// RunStarted starts the run's trace now.
func (t *Tracer) RunStarted(r *session.Run, link session.Link) session.RunObserver {
	earlier := false
	if link.TraceID == "" && t.earlier != nil && r.Type == session.TypeWorkflow {
		bound := link.BoundUser
		link, earlier = t.earlierTrace(r.ID), true
		link.BoundUser = bound
	}
	tr := NewTrace(runInfo(r), Parent{TraceID: link.TraceID, SpanID: link.SpanID}, time.Now(), 0)
	if earlier && link.TraceID != "" {
		tr.root.Attributes[LinkKindAttribute] = LinkEarlier
	}
	if t.content.Enabled && !(link.BoundUser && t.content.SkipBoundKeys) {
		tr.SetContent(t.content.Content)
	}
	return &runTrace{tr: tr, t: t}
}

// RunInterrupted records a trace for a run the previous process left
// unfinished: that process built the run's trace in memory and died before
// recording it, so without this a crashed run would have none. The trace has
// the run's root span only, from its start to the recovery, failed with the
// run's error; it is a new trace (the lost one's id was never stored), found
// by the run's id, session, agent or team, and user.
func (t *Tracer) RunInterrupted(r *session.Run) {
	tr := NewTrace(runInfo(r), Parent{}, r.CreatedAt, 0)
	t.record(tr.Finish(r.UpdatedAt, StatusError, "interrupted", r.Error, event.Metrics{}))
}

// earlierTrace returns the root span of the newest trace of run id, or the
// zero Link when it has none (yet: spans are written in batches).
func (t *Tracer) earlierTrace(id string) session.Link {
	ctx, cancel := context.WithTimeout(context.Background(), earlierLookup)
	defer cancel()
	traces, _, err := t.earlier.ListTraces(ctx, TraceQuery{RunID: id, Limit: 1})
	if err != nil || len(traces) == 0 {
		return session.Link{}
	}
	spans, err := t.earlier.GetTrace(ctx, traces[0].TraceID)
	if err != nil {
		return session.Link{}
	}
	for _, s := range spans {
		if s.RunID == id && s.Attributes[RootAttribute] == "true" {
			return session.Link{TraceID: s.TraceID, SpanID: s.SpanID}
		}
	}
	return session.Link{}
}

func runInfo(r *session.Run) RunInfo {
	return RunInfo{Kind: r.Type, Target: r.ComponentID, RunID: r.ID, SessionID: r.SessionID, UserID: r.UserID,
		SpecVersion: r.SpecVersion, Input: r.Input, Model: r.Model, Provider: r.Provider}
}

// runTrace is the trace of one run in progress.
type runTrace struct {
	tr *Trace
	t  *Tracer
}

func (rt *runTrace) Event(e event.Event) { rt.tr.Observe(e) }

func (rt *runTrace) StoreSpan(name string, start, end time.Time, err error) {
	rt.tr.StoreSpan(name, start, end, err)
}

// RunFinished ends the trace with the run's outcome and records its spans.
func (rt *runTrace) RunFinished(r *session.Run, errorKind string) {
	if r.Status == event.StatusPaused {
		rt.t.record(rt.tr.Paused(time.Now(), r.Metrics))
		return
	}
	status := StatusOK
	if r.Status != event.StatusCompleted {
		status = StatusError
	}
	rt.t.record(rt.tr.Finish(time.Now(), status, errorKind, r.Error, r.Metrics))
}

// TraceContext returns the run's trace id and root span id.
func (rt *runTrace) TraceContext() (traceID, spanID string) { return rt.tr.TraceID(), rt.tr.SpanID() }

// RunStarted returns the observer counting the run's events (see Observe).
func (m *Metrics) RunStarted(*session.Run, session.Link) session.RunObserver { return metricsRun{m} }

// RunInterrupted does nothing: an interrupted run was never counted as
// started, and the process that ran it kept its own counters.
func (m *Metrics) RunInterrupted(*session.Run) {}

// metricsRun feeds one run's events to Metrics.Observe.
type metricsRun struct{ m *Metrics }

func (o metricsRun) Event(e event.Event)                         { o.m.Observe(e) }
func (metricsRun) StoreSpan(string, time.Time, time.Time, error) {}
func (metricsRun) RunFinished(*session.Run, string)              {}
