package telemetry

import (
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
)

// Tracer is the run service's tracing: a session.Observer that builds each
// run's trace from its events (see Trace) and hands its spans to a Recorder
// when the run finishes.
type Tracer struct {
	rec *Recorder
}

// NewTracer returns a tracer recording to rec.
func NewTracer(rec *Recorder) *Tracer { return &Tracer{rec: rec} }

var (
	_ session.Observer    = (*Tracer)(nil)
	_ session.RunObserver = (*runTrace)(nil)
	_ session.Traced      = (*runTrace)(nil)
	_ session.Observer    = (*Metrics)(nil)
	_ session.RunObserver = metricsRun{}
)

// RunStarted starts the run's trace now.
func (t *Tracer) RunStarted(r *session.Run, link session.Link) session.RunObserver {
	tr := NewTrace(runInfo(r), Parent(link), time.Now(), 0)
	return &runTrace{tr: tr, rec: t.rec}
}

// RunInterrupted records a trace for a run the previous process left
// unfinished: that process built the run's trace in memory and died before
// recording it, so without this a crashed run would have none. The trace has
// the run's root span only, from its start to the recovery, failed with the
// run's error; it is a new trace (the lost one's id was never stored), found
// by the run's id, session, agent or team, and user.
func (t *Tracer) RunInterrupted(r *session.Run) {
	tr := NewTrace(runInfo(r), Parent{}, r.CreatedAt, 0)
	t.rec.Record(tr.Finish(r.UpdatedAt, StatusError, "interrupted", r.Error, event.Metrics{})...)
}

func runInfo(r *session.Run) RunInfo {
	return RunInfo{Kind: r.Type, Target: r.ComponentID, RunID: r.ID, SessionID: r.SessionID, UserID: r.UserID,
		SpecVersion: r.SpecVersion, Input: r.Input, Model: r.Model, Provider: r.Provider}
}

// runTrace is the trace of one run in progress.
type runTrace struct {
	tr  *Trace
	rec *Recorder
}

func (rt *runTrace) Event(e event.Event) { rt.tr.Observe(e) }

func (rt *runTrace) StoreSpan(name string, start, end time.Time, err error) {
	rt.tr.StoreSpan(name, start, end, err)
}

// RunFinished ends the trace with the run's outcome and records its spans.
func (rt *runTrace) RunFinished(r *session.Run, errorKind string) {
	status := StatusOK
	if r.Status != event.StatusCompleted {
		status = StatusError
	}
	rt.rec.Record(rt.tr.Finish(time.Now(), status, errorKind, r.Error, r.Metrics)...)
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
