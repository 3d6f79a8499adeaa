package console

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// runParams describe one turn requested over HTTP.
type runParams struct {
	Kind      spec.Kind
	Name      string
	Message   string
	SessionID string // empty: a new session
	UserID    string
	Stream    bool
	// History, when not nil, is the conversation to answer (the OpenAI
	// endpoint sends it with every request) instead of the session's.
	History []model.Message
	// BoundUser is set when UserID comes from the caller's API key.
	BoundUser bool
	// Link is the caller's span from its traceparent header: the run's own
	// trace links to it (see telemetry.NewTrace) and never joins it.
	Link telemetry.Parent
}

// httpError is an error with the status code it should be answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// runService starts, tracks and persists runs. It owns every run started over
// HTTP: cancel requests find them here, and shutdown waits for them.
type runService struct {
	eng Engine
	st  Store
	log *slog.Logger

	mu     sync.Mutex
	active map[string]*activeRun
	wg     sync.WaitGroup

	recorder *telemetry.Recorder // nil: tracing off
	metrics  *telemetry.Metrics  // nil: no Prometheus metrics
}

type activeRun struct {
	kind      spec.Kind
	name      string
	userID    string
	sessionID string
	cancel    context.CancelCauseFunc
	done      chan struct{} // closed once the run's final state is saved
}

var (
	// errCancelled is the cause of a run cancelled through the cancel route.
	errCancelled = errors.New("cancelled by request")
	// errSessionDeleted is the cause of a run whose session was deleted.
	errSessionDeleted = errors.New("the session was deleted while the run was in progress")
)

// sessionStopWait bounds how long deleting a session waits for its runs to
// stop. Runs stop promptly on cancellation; one that does not is deleted
// anyway, and its final save then finds no row to update.
const sessionStopWait = 5 * time.Second

// start validates a request and persists the new run; the returned run is ready
// to execute. Errors are *httpError.
func (rs *runService) start(ctx context.Context, p runParams) (*pendingRun, error) {
	if p.SessionID != "" && !validSessionID(p.SessionID) {
		return nil, &httpError{http.StatusUnprocessableEntity, sessionIDRule}
	}
	if strings.IndexByte(p.Message, 0) >= 0 {
		// PostgreSQL cannot store NUL in text, and stripping it silently
		// would store something other than what was sent: refuse it on
		// every database alike.
		return nil, &httpError{http.StatusUnprocessableEntity, "message contains a NUL byte (\\u0000); remove it and send again"}
	}
	snap, release := rs.eng.Acquire()
	runner, err := snap.Runner(p.Kind, p.Name)
	if err != nil {
		release()
		var be *engine.BrokenError
		if errors.As(err, &be) {
			return nil, &httpError{http.StatusConflict, err.Error() + " (fix the spec file; the previous version is not available)"}
		}
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("%s %q not found", p.Kind.Lower(), p.Name)}
	}
	typ := "agent"
	if p.Kind == spec.KindTeam {
		typ = "team"
	}
	pr := &pendingRun{rs: rs, p: p, snap: snap, release: release, runner: runner}
	if p.SessionID != "" && p.UserID == "" && !p.BoundUser {
		// An unbound caller (open server or admin key) continuing a session
		// acts as the session's user, so the turn lands in the same history.
		if existing, err := rs.st.GetSession(ctx, p.SessionID, store.Filter{}); err == nil {
			p.UserID = existing.UserID
		}
	}
	pr.p = p
	pr.session = &store.Session{ID: p.SessionID, Type: typ, ComponentID: p.Name, UserID: p.UserID}
	if pr.session.ID == "" {
		pr.session.ID = newID()
	}
	modelID, provider := runnerModel(runner)
	pr.run = &store.Run{
		ID: newID(), SessionID: pr.session.ID, ComponentID: p.Name, Type: typ,
		Input: p.Message, Status: "RUNNING", SpecVersion: snap.Version(), UserID: p.UserID,
		Model: modelID, Provider: provider,
	}
	if err := rs.st.StartRun(ctx, pr.session, pr.run); err != nil {
		release()
		if errors.Is(err, store.ErrNotFound) {
			return nil, &httpError{http.StatusNotFound, fmt.Sprintf("session %q not found", p.SessionID)}
		}
		return nil, fmt.Errorf("starting run: %w", err)
	}
	if rs.recorder != nil {
		pr.trace = telemetry.NewTrace(telemetry.RunInfo{Kind: typ, Target: p.Name, RunID: pr.run.ID, SessionID: pr.session.ID, UserID: p.UserID,
			SpecVersion: snap.Version(), Input: p.Message, Model: modelID, Provider: provider}, p.Link, time.Now(), 0)
	}
	pr.history = p.History
	if pr.history == nil && p.SessionID != "" {
		if n := historyRuns(runner); n > 0 {
			h, err := rs.st.History(ctx, pr.session.ID, n)
			if err != nil {
				rs.log.Warn("loading session history; answering without it", "session_id", pr.session.ID, "err", err)
			}
			pr.history = h
		}
	}
	return pr, nil
}

func runnerModel(r agent.Runner) (string, string) {
	if m, ok := r.(interface{ ModelInfo() (string, string) }); ok {
		return m.ModelInfo()
	}
	return "", ""
}

// historyRuns is how many earlier runs of the session an agent reads.
func historyRuns(r agent.Runner) int {
	if a, ok := r.(*agent.Agent); ok {
		return a.Spec().History
	}
	return 0
}

// pendingRun is a persisted run about to execute.
type pendingRun struct {
	rs      *runService
	p       runParams
	snap    *engine.Snapshot
	release func()
	runner  agent.Runner
	session *store.Session
	run     *store.Run
	history []model.Message
	trace   *telemetry.Trace // nil when tracing is off
}

// traceparent returns the W3C header naming this run's root span, or "".
func (pr *pendingRun) traceparent() string {
	if pr.trace == nil {
		return ""
	}
	return telemetry.Traceparent(pr.trace.TraceID(), pr.trace.SpanID())
}

// execute runs the turn on the snapshot it was started with. emit receives every
// event; the terminal event is delivered only after the run's final state is
// committed, so a client that saw RunCompleted can read the run back.
func (pr *pendingRun) execute(ctx context.Context, emit func(event.Event)) *store.Run {
	rs := pr.rs
	defer pr.release()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rs.register(pr.run.ID, &activeRun{kind: pr.p.Kind, name: pr.p.Name, userID: pr.p.UserID, sessionID: pr.session.ID,
		cancel: cancel, done: make(chan struct{})})
	defer rs.unregister(pr.run.ID)

	var terminal *event.Event
	// streamed is the answer text the client has seen, kept for a run that
	// ends without an answer of its own (cancelled, failed) after text
	// started to stream.
	var streamed strings.Builder
	res := pr.runner.Execute(ctx, agent.Input{
		Message: pr.p.Message, History: pr.history, RunID: pr.run.ID,
		SessionID: pr.session.ID, UserID: pr.p.UserID, Stream: pr.p.Stream,
	}, func(e event.Event) {
		if pr.trace != nil {
			pr.trace.Observe(e)
		}
		if rs.metrics != nil {
			rs.metrics.Observe(e)
		}
		if e.Depth == 0 && e.Type.Terminal() {
			terminal = &e
			return
		}
		if e.Depth == 0 && e.Type == event.RunContent {
			streamed.WriteString(e.Content)
		}
		emit(e)
	})

	r := pr.run
	r.Content, r.Status, r.Tools, r.Messages, r.Metrics = res.Content, store.RunStatus(res.Status), res.Tools, res.Messages, res.Metrics
	r.References = res.References
	if r.Status != store.RunCompleted && r.Content == "" && streamed.Len() > 0 {
		r.Content, r.Partial = streamed.String(), true
	}
	if res.Err != nil {
		r.Error = res.Err.Error()
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errCancelled):
			r.Error = "cancelled by request"
		case errors.Is(cause, errSessionDeleted):
			r.Error = errSessionDeleted.Error()
		}
	}
	// Commit even when the client went away: the run happened.
	saveCtx, cancelSave := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelSave()
	saveStart := time.Now()
	err := rs.st.FinishRun(saveCtx, r)
	if pr.trace != nil {
		pr.trace.StoreSpan("store.finish_run", saveStart, time.Now(), err)
	}
	if errors.Is(err, store.ErrNotFound) && errors.Is(context.Cause(ctx), errSessionDeleted) {
		// The session and its runs are gone, as asked: nothing to save,
		// and the run ends cancelled, not failed.
		err = nil
	}
	if err != nil {
		rs.log.Error("saving run", "run_id", r.ID, "err", err)
		if terminal != nil {
			terminal.Type, terminal.Content, terminal.ErrorKind = event.RunError, "the run finished but could not be saved: "+err.Error(), "store"
		}
		r.Status, r.Error = "ERROR", "could not be saved: "+err.Error()
	}
	if terminal != nil {
		if terminal.Type == event.RunCompleted {
			terminal.References = res.References
		}
		emit(*terminal)
	}
	if pr.trace != nil {
		status := telemetry.StatusOK
		if r.Status != "COMPLETED" {
			status = telemetry.StatusError
		}
		rs.recorder.Record(pr.trace.Finish(time.Now(), status, res.ErrorKind, r.Error, res.Metrics)...)
	}
	return r
}

// traceInterrupted records a trace for each run the previous process left
// unfinished: that process built the run's trace in memory and died before
// recording it, so without this a crashed run would have none. The trace
// has the run's root span only, from its start to the recovery, failed with
// store.InterruptedRunError; it is a new trace (the lost one's id was never
// stored), found by the run's id, session, agent or team, and user. Member
// runs of a team belong to their team's trace and get none of their own.
func (rs *runService) traceInterrupted() {
	if rs.recorder == nil {
		return
	}
	for _, r := range rs.st.Interrupted() {
		if r.ParentRunID != "" {
			continue
		}
		tr := telemetry.NewTrace(telemetry.RunInfo{Kind: r.Type, Target: r.ComponentID, RunID: r.ID, SessionID: r.SessionID, UserID: r.UserID,
			SpecVersion: r.SpecVersion, Input: r.Input, Model: r.Model, Provider: r.Provider}, telemetry.Parent{}, r.CreatedAt, 0)
		rs.recorder.Record(tr.Finish(r.UpdatedAt, telemetry.StatusError, "interrupted", r.Error, event.Metrics{})...)
	}
}

func (rs *runService) register(id string, a *activeRun) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.active[id] = a
	rs.wg.Add(1)
}

func (rs *runService) unregister(id string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if a, ok := rs.active[id]; ok {
		delete(rs.active, id)
		close(a.done)
		rs.wg.Done()
	}
}

// stopSessionRuns cancels the active runs of the sessions among ids that a
// caller bound to userID (every run when empty) may see, and waits until they
// have saved their final state or ctx ends, at most sessionStopWait. Deleting
// a session calls it first, so that no run keeps working (and spending) for
// a session that no longer exists, and no final save races the deletion.
func (rs *runService) stopSessionRuns(ctx context.Context, ids []string, userID string) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var stopping []*activeRun
	rs.mu.Lock()
	for _, a := range rs.active {
		if want[a.sessionID] && (userID == "" || a.userID == userID) {
			stopping = append(stopping, a)
		}
	}
	rs.mu.Unlock()
	if len(stopping) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sessionStopWait)
	defer cancel()
	for _, a := range stopping {
		a.cancel(errSessionDeleted)
	}
	for _, a := range stopping {
		select {
		case <-a.done:
		case <-ctx.Done():
			rs.log.Warn("deleting a session whose run has not stopped yet", "session_id", a.sessionID)
			return
		}
	}
}

// cancel stops an active run of kind/name. A caller bound to a user may only
// cancel that user's runs.
func (rs *runService) cancel(kind spec.Kind, name, runID string, p principal) bool {
	return rs.cancelIf(runID, p, func(a *activeRun) bool { return a.kind == kind && a.name == name })
}

// cancelByID stops an active run whatever its target (the console's cancel
// button knows only the run).
func (rs *runService) cancelByID(runID string, p principal) bool {
	return rs.cancelIf(runID, p, func(*activeRun) bool { return true })
}

func (rs *runService) cancelIf(runID string, p principal, match func(*activeRun) bool) bool {
	rs.mu.Lock()
	a, ok := rs.active[runID]
	rs.mu.Unlock()
	if !ok || !match(a) {
		return false
	}
	if u := p.userID(""); u != "" && u != a.userID {
		return false
	}
	a.cancel(errCancelled)
	return true
}

// activeCount returns how many runs are in flight.
func (rs *runService) activeCount() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.active)
}

// sessionIDRule is the syntax of client-chosen session ids, as told to
// clients that break it.
const sessionIDRule = "session_id must be 1 to 128 characters of letters, digits, '.', '_', ':' and '-', and not . or .. (a UUID fits)"

// validSessionID reports whether id follows sessionIDRule. Ids travel in URL
// paths and headers (X-Session-Id), so they must be short and need no
// escaping: an id with a slash could never be fetched again.
func validSessionID(id string) bool {
	if id == "" || len(id) > 128 || id == "." || id == ".." {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// newID returns a UUID of version 7: 48 bits of Unix milliseconds, then
// random bits. Runs and sessions are stored by id, so ids that grow with time
// put each new row next to the last in the primary-key index, rather than on
// a random page that the transaction must then write out.
func newID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:])
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
