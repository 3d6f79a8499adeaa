package session

import (
	"time"

	"github.com/troupehq/troupe/engine/event"
)

// Link is the caller's span (from a W3C traceparent header), for a trace that
// links to it. A run's trace never joins the caller's (see telemetry.NewTrace).
type Link struct {
	TraceID string
	SpanID  string
	// BoundUser is set when the caller acts as the user its API key is
	// bound to (Params.BoundUser), for observers that treat such runs
	// apart (traces that leave their conversations out).
	BoundUser bool
}

// Observer is told about runs as the service executes them: tracing and
// metrics implement it (package telemetry), and cmd/troupe wires them. Its
// methods are called concurrently for different runs.
type Observer interface {
	// RunStarted is called once run r is stored and about to execute, and
	// returns the observer of that one run, or nil to ignore it. r describes
	// the run as stored (id, session, target, user, input, model, spec
	// version, creation time); it must not be retained or modified.
	RunStarted(r *Run, link Link) RunObserver
	// RunInterrupted is called, when the service is built, for each
	// top-level run that the previous process left unfinished and the store
	// marked failed (Store.Interrupted): that process died before it could
	// report the run's end.
	RunInterrupted(r *Run)
}

// RunObserver observes one run. Event is called for every event of the run,
// members' included, never concurrently; then StoreSpan for the write of the
// final state; then RunFinished, once.
type RunObserver interface {
	Event(e event.Event)
	// StoreSpan reports a write of the run's state to the store, and its
	// error.
	StoreSpan(name string, start, end time.Time, err error)
	// RunFinished reports the run's final state as committed (Status
	// StatusError when it could not be), and the class of its error (see
	// event.Event.ErrorKind). r must not be retained or modified.
	RunFinished(r *Run, errorKind string)
}

// Traced is implemented by a RunObserver that records the run's trace, so
// that callers can name it to their clients (traceparent headers, trace
// links).
type Traced interface {
	// TraceContext returns the run's trace id and its root span's id.
	TraceContext() (traceID, spanID string)
}
