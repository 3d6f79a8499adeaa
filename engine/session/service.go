// Package session is the run service: it owns a turn of an agent or team from
// start to end, whoever asks for it (the HTTP API, the OpenAI surface, the
// console's chat, `troupe run`, and later jobs, workflows and schedules). It
// pins the snapshot, creates or continues the session, loads its history,
// persists the run and its team members' runs, tells observers (tracing,
// metrics), keeps the set of active runs for cancellation, and drains them at
// shutdown.
//
// The service declares what it consumes: a Store for sessions and runs,
// Targets for agents and teams, and Observers. It imports no database,
// telemetry or HTTP package; cmd/troupe wires the implementations.
package session

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
)

// Options configure a Service.
type Options struct {
	Targets Targets
	Store   Store
	// Observers are told of every run, in order (tracing before metrics, as
	// the server has always fed them).
	Observers []Observer
	Logger    *slog.Logger
	// DrainTimeout is how long Run lets in-flight runs finish once its
	// context ends before it cancels them (default 30s).
	DrainTimeout time.Duration
	// SessionStopWait bounds how long StopSessions waits for the runs it
	// cancels to save their final state (default 5s).
	SessionStopWait time.Duration
	// Events, when set, logs the events of the top-level runs whose
	// events are wanted (Params.KeepEvents, or a stream request from
	// another replica: see EventLog) so that their streams can be resumed
	// on any replica (see Resume), and Run watches for those requests;
	// without it only runs executing in this process can be resumed.
	Events EventLog
	// FlushInterval and FlushEvents batch the writes of a logged run's
	// events to Events: every FlushInterval (default 50ms) or as soon as
	// FlushEvents (default 64) wait, whichever comes first, off the run's
	// own path. The last batch, terminal event included, is committed with
	// the run's final state.
	FlushInterval time.Duration
	FlushEvents   int
	// PollInterval is how often a resumed stream of a run executing on
	// another replica reads the event log for more (default 100ms).
	PollInterval time.Duration
	// JournalRetention is how long the events of a run that ended stay in
	// memory (default 1m; negative keeps none), so that a stream lost
	// right before the end resumes on this replica with every event. At
	// most 1024 journals and 32 MiB are kept; the oldest go first.
	JournalRetention time.Duration
	// Cancels, when set, carries cancels to and from the other replicas on
	// the same database: Cancel and StopSessions reach runs executing
	// elsewhere, and Run watches for requests to stop the runs executing
	// here. Nil confines them to this process.
	Cancels Cancels
	// CancelPoll is how often Run looks for cancel requests from other
	// replicas while runs are active (default 250ms).
	CancelPoll time.Duration
	// Liveness, when set, lets replicas on one database tell which runs are
	// still executing: Run keeps this replica's heartbeat and fails the runs
	// of replicas that died. Nil leaves recovery to the store's opening.
	Liveness Liveness
	// HeartbeatInterval is how often Run refreshes this replica's heartbeat
	// (default 5s); the store's lease must be several of them.
	HeartbeatInterval time.Duration
	// RecoverInterval is how often Run looks for runs of dead replicas
	// (default 30s).
	RecoverInterval time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is kept (default
	// DefaultIdempotencyTTL): within it the same key and request replay
	// the first run; past it the key is treated as new, and the purge job
	// deletes it.
	IdempotencyTTL time.Duration
	// Announcer, when set, is told of new approvals (timeouts, webhooks).
	Announcer Announcer
	// Requeue queues the jobs of workflow runs interrupted by a crash, which
	// the store sets back to PENDING; nil leaves them waiting.
	Requeue Requeuer
	// Summaries queues the summary jobs of sessions whose agent or team has
	// summary on, after a run takes their unfolded history over the
	// threshold; nil folds nothing (the summary a session has is still
	// used). The Store must implement SummaryStore for summaries to work.
	Summaries SummaryQueue
	// Memories recalls the user's memories into the context of runs whose
	// agent or team has memory; nil recalls none.
	Memories Memories
	// Files keeps the bytes of the files sent with runs (files.Disk, or an
	// S3-compatible store). A run's files are put there once the run is
	// validated and its idempotency key reserved, just before the run is
	// stored, and deleted again when it is not: a refused run, or a replay
	// of an earlier one, stores no bytes. nil takes no files.
	Files files.Store
}

// Service starts, tracks and persists runs. It is safe for concurrent use.
type Service struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	active map[string]*active
	// ended holds the runs that ended less than Options.JournalRetention
	// ago, for their journals; endedOrder is their ids, oldest first, and
	// endedBytes the size of their journals.
	ended      map[string]*active
	endedOrder []string
	endedBytes int

	// resumable are the workflow runs the previous process left, set back
	// to PENDING by the store; Run queues them.
	resumable []Run
}

// active is a run in flight.
type active struct {
	kind      spec.Kind
	name      string
	userID    string
	sessionID string
	cancel    context.CancelCauseFunc
	done      chan struct{} // closed once the run's final state is saved
	journal   *journal      // the run's events, for resumed streams
	// logEvents starts logging the run's events (a stream request).
	logEvents func()
	// until is when the journal of an ended run is dropped.
	until time.Time
}

// New builds a service and reports the runs the previous process left
// unfinished to the observers (see Observer.RunInterrupted).
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.SessionStopWait <= 0 {
		opts.SessionStopWait = 5 * time.Second
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = defaultFlushInterval
	}
	if opts.FlushEvents <= 0 {
		opts.FlushEvents = defaultFlushEvents
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.JournalRetention == 0 {
		opts.JournalRetention = defaultJournalRetention
	}
	if opts.CancelPoll <= 0 {
		opts.CancelPoll = 250 * time.Millisecond
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 5 * time.Second
	}
	if opts.RecoverInterval <= 0 {
		opts.RecoverInterval = 30 * time.Second
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = DefaultIdempotencyTTL
	}
	s := &Service{opts: opts, log: opts.Logger, active: map[string]*active{}, ended: map[string]*active{}}
	s.resumable = s.interrupted(opts.Store.Interrupted())
	return s
}

// Params describe one turn to run.
type Params struct {
	Kind    spec.Kind
	Name    string
	Message string
	// SessionID continues a session, or starts one with this id when none
	// exists; empty starts a new session with an id of the service's.
	SessionID string
	UserID    string
	// BoundUser is set when UserID is the caller's own identity (from its
	// API key) rather than a name it chose.
	BoundUser bool
	// Stream asks the model to stream, so RunContent events carry deltas.
	Stream bool
	// State, when not nil, is merged into the session's key-value state
	// before the run (AgentOS session_state; a null value deletes its key).
	State map[string]any
	// History, when not nil, is the conversation to answer (the OpenAI
	// endpoint sends it with every request) instead of the session's.
	History []model.Message
	// Link is the caller's span, which the run's trace links to.
	Link Link
	// IdempotencyKey, when set, makes the request repeatable: the same key
	// (per user) with the same RequestHash returns a *ReplayError naming
	// the run the first request made; with another hash, ErrInvalid.
	IdempotencyKey string
	// RequestHash identifies the request the key was sent with.
	RequestHash string
	// KeepEvents logs the run's events to Options.Events from the first,
	// whether or not a stream is resumed on another replica: a background
	// run, which nobody streams as it executes, wants them all.
	KeepEvents bool
	// Files are the checked files sent with the message (files.Check):
	// their bytes go to Options.Files and their metadata is stored with
	// the run; documents reach the model as delimited text after the
	// message and images beside it (files.Attach).
	Files []files.File
}

// Start validates a turn, pins its target and stores the new run; the
// returned turn is ready to execute, and Execute must be called to release
// what Start pinned. Refusals are *Error values: ErrInvalid, ErrNotFound
// (ErrSessionNotFound for a session that is someone else's), ErrBroken.
func (s *Service) Start(ctx context.Context, p Params) (*Turn, error) {
	tg, err := s.resolve(ctx, &p)
	if err != nil {
		return nil, err
	}
	t := &Turn{s: s, p: p, runner: tg.Runner, release: tg.Release}
	t.session, t.run = newRun(p, tg, event.StatusRunning)
	if err := s.store(ctx, p, t.session, t.run); err != nil {
		tg.Release()
		return nil, err
	}
	if p.State != nil {
		t.session.State, t.stateSent = agent.MergeState(t.session.State, p.State), true
	}
	t.begin(ctx)
	return t, nil
}

// resolve validates a turn and pins its target; it sets p.UserID to the
// session's user for an unbound caller continuing a session.
func (s *Service) resolve(ctx context.Context, p *Params) (Target, error) {
	if p.SessionID != "" && !ValidSessionID(p.SessionID) {
		return Target{}, &Error{Kind: ErrInvalid, Msg: SessionIDRule}
	}
	if strings.IndexByte(p.Message, 0) >= 0 {
		// PostgreSQL cannot store NUL in text, and stripping it silently
		// would store something other than what was sent: refuse it on
		// every database alike.
		return Target{}, &Error{Kind: ErrInvalid, Msg: "message contains a NUL byte (\\u0000); remove it and send again"}
	}
	tg, err := s.opts.Targets.Pin(p.Kind, p.Name)
	if err != nil {
		if errors.Is(err, ErrBroken) {
			return Target{}, &Error{Kind: ErrBroken, Msg: err.Error() + " (fix the spec file; the previous version is not available)"}
		}
		return Target{}, &Error{Kind: ErrNotFound, Msg: fmt.Sprintf("%s %q not found", p.Kind.Lower(), p.Name)}
	}
	if p.SessionID != "" && p.UserID == "" && !p.BoundUser {
		// An unbound caller (open server or admin key) continuing a session
		// acts as the session's user, so the turn lands in the same history.
		if existing, err := s.opts.Store.GetSession(ctx, p.SessionID, Filter{}); err == nil {
			p.UserID = existing.UserID
		}
	}
	if p.State != nil {
		// Checked before the run is stored, against the state it merges
		// into: a session the caller may not see has none here, and
		// storing the run refuses it anyway.
		var current map[string]any
		if p.SessionID != "" {
			if existing, err := s.opts.Store.GetSession(ctx, p.SessionID, Filter{UserID: p.UserID}); err == nil {
				current = existing.State
			}
		}
		if err := agent.CheckState(agent.MergeState(current, p.State)); err != nil {
			tg.Release()
			return Target{}, &Error{Kind: ErrInvalid, Msg: "session_state: " + err.Error()}
		}
	}
	return tg, nil
}

// newRun builds the session and run records of a turn on tg.
func newRun(p Params, tg Target, status event.Status) (*Session, *Run) {
	typ := TypeOf(p.Kind)
	sess := &Session{ID: p.SessionID, Type: typ, ComponentID: p.Name, UserID: p.UserID}
	if sess.ID == "" {
		sess.ID = NewID()
	}
	modelID, provider := tg.Runner.ModelInfo()
	r := &Run{
		ID: NewID(), SessionID: sess.ID, ComponentID: p.Name, Type: typ,
		Input: p.Message, Status: status, SpecVersion: tg.Version, UserID: p.UserID,
		Model: modelID, Provider: provider,
	}
	for _, f := range p.Files {
		r.Files = append(r.Files, File{ID: NewID(), RunID: r.ID, SessionID: sess.ID, Name: f.Name,
			MediaType: f.MediaType, Size: f.Size, SHA256: f.SHA256, Key: f.Key})
	}
	return sess, r
}

// store stores a new run, with its session when that is new, after
// reserving the request's idempotency key for it.
func (s *Service) store(ctx context.Context, p Params, sess *Session, r *Run) error {
	if err := s.reserveKey(ctx, p, r.ID); err != nil {
		return err
	}
	if err := s.putFiles(ctx, p, r); err != nil {
		s.releaseKey(ctx, p, r.ID)
		return err
	}
	if err := s.opts.Store.StartRun(ctx, sess, r); err != nil {
		s.dropFiles(r.Files)
		s.releaseKey(ctx, p, r.ID)
		if errors.Is(err, ErrNotFound) {
			return &Error{Kind: ErrSessionNotFound, Msg: fmt.Sprintf("session %q not found", sess.ID)}
		}
		return fmt.Errorf("starting run: %w", err)
	}
	return nil
}

// putFiles keeps the bytes of the run's files in Options.Files, each under
// a new key recorded on r's file (and the turn's), before the run that
// names them is stored.
func (s *Service) putFiles(ctx context.Context, p Params, r *Run) error {
	if len(p.Files) == 0 {
		return nil
	}
	if s.opts.Files == nil {
		return &Error{Kind: ErrInvalid, Msg: "this server takes no files with runs; send the message alone"}
	}
	for i := range p.Files {
		key := files.NewKey()
		if err := s.opts.Files.Put(ctx, key, p.Files[i].Data); err != nil {
			s.dropFiles(r.Files[:i])
			return fmt.Errorf("storing %q: %w", p.Files[i].Name, err)
		}
		p.Files[i].Key, r.Files[i].Key = key, key
	}
	return nil
}

// dropFiles deletes the bytes of files whose run was not stored.
func (s *Service) dropFiles(fs []File) {
	for _, f := range fs {
		// A context of its own: the request's may be what ended.
		if err := s.opts.Files.Delete(context.Background(), f.Key); err != nil {
			s.log.Warn("deleting the file of a run that did not start", "key", f.Key, "err", err)
		}
	}
}

// begin tells the observers the turn's run started and loads the history it
// answers with.
func (t *Turn) begin(ctx context.Context) {
	s, p := t.s, t.p
	link := p.Link
	link.BoundUser = p.BoundUser
	for _, o := range s.opts.Observers {
		if ro := o.RunStarted(t.run, link); ro != nil {
			t.obs = append(t.obs, ro)
		}
	}
	t.recallMemories(ctx)
	t.history = p.History
	if t.history == nil && t.beginSummarized(ctx) {
		return
	}
	if t.history == nil && p.SessionID != "" {
		if n := t.runner.HistoryRuns(); n > 0 {
			runs, err := s.opts.Store.History(ctx, t.session.ID, n)
			if err != nil {
				s.log.Warn("loading session history; answering without it", "session_id", t.session.ID, "err", err)
			}
			budget := 0
			if b, ok := t.runner.(historyBudgeter); ok {
				budget = b.HistoryTokens()
			}
			t.history = FitHistory(runs, budget)
		}
	}
}

// Turn is a stored run about to execute on the snapshot Start pinned.
type Turn struct {
	s       *Service
	p       Params
	runner  agent.Runner
	release func()
	session *Session
	run     *Run
	history []model.Message
	// stateSent is set when the request merged session_state into the
	// session's state, which is saved with the run even if the run leaves
	// it alone.
	stateSent bool
	obs       []RunObserver
	// resume continues a paused run from its held state.
	resume *agent.Resume
	// summaryCfg is the runner's summary configuration (nil when off),
	// summary the session's summary when it has one, and unfolded the
	// session's completed runs after it, oldest first: with the turn's own
	// run they decide whether to fold (see foldAfter).
	summaryCfg *SummaryConfig
	summary    *Summary
	unfolded   []HistoryRun
	// unfoldedRuns and unfoldedTokens size all of the session's unfolded
	// runs (unfolded holds only the newest).
	unfoldedRuns, unfoldedTokens int
	// memories is the section of the user's memories recalled for the
	// turn (see recallMemories).
	memories string
}

// RunID returns the run's id.
func (t *Turn) RunID() string { return t.run.ID }

// SessionID returns the id of the run's session.
func (t *Turn) SessionID() string { return t.session.ID }

// TraceContext returns the ids of the run's trace and root span, or empty
// strings when no observer traces it.
func (t *Turn) TraceContext() (traceID, spanID string) {
	for _, o := range t.obs {
		if tr, ok := o.(Traced); ok {
			return tr.TraceContext()
		}
	}
	return "", ""
}

// member is what the events tell of a team member's run, for storing it.
type member struct {
	typ     string
	started time.Time
}

// Execute runs the turn. emit receives every event, members' included, from
// one goroutine at a time; the run's own terminal event is delivered only
// after the run's final state (and its members' runs) are committed, so a
// client that saw RunCompleted can read the run back. A run cancelled or
// failed after its answer started to stream keeps the streamed text, marked
// partial. The returned run is the final state as stored.
func (t *Turn) Execute(ctx context.Context, emit func(event.Event)) *Run {
	s := t.s
	defer t.release()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	j := newJournal(s.opts.FlushEvents)
	// The log is written even when the client went away: a resume is what
	// it is for.
	logCtx := context.WithoutCancel(ctx)
	a := &active{kind: t.p.Kind, name: t.p.Name, userID: t.p.UserID, sessionID: t.session.ID,
		cancel: cancel, done: make(chan struct{}), journal: j}
	if s.opts.Events != nil {
		a.logEvents = func() { j.want(func(stop, kick <-chan struct{}) { t.flush(logCtx, j, stop, kick) }) }
		if t.p.KeepEvents {
			a.logEvents()
		}
	}
	s.register(t.run.ID, a)
	defer s.unregister(t.run.ID)
	defer j.end()

	var terminal *event.Event
	// streamed is the answer text the client has seen, kept for a run that
	// ends without an answer of its own (cancelled, failed) after text
	// started to stream.
	var streamed strings.Builder
	var members map[string]member
	message, images := files.Attach(t.p.Message, t.p.Files)
	res := t.runner.Execute(ctx, agent.Input{
		Message: message, Images: images, History: t.history, RunID: t.run.ID,
		SessionID: t.session.ID, UserID: t.p.UserID, Stream: t.p.Stream, State: t.session.State, Resume: t.resume,
		Summary: SummaryPrompt(t.summary), Memories: t.memories,
	}, func(e event.Event) {
		for _, o := range t.obs {
			o.Event(e)
		}
		// A continued member starts with RunContinued: its kind counts
		// too, for a member stored only now.
		if e.Depth > 0 && (e.Type == event.RunStarted || e.Type == event.RunContinued) && members[e.RunID].typ == "" {
			if members == nil {
				members = map[string]member{}
			}
			typ := TypeAgent
			switch {
			case e.TeamID != "" && e.AgentID == "":
				typ = TypeTeam
			case e.WorkflowID != "" && e.AgentID == "" && e.TeamID == "":
				typ = TypeWorkflow // a nested workflow step
			}
			members[e.RunID] = member{typ: typ, started: e.CreatedAt}
		}
		if e.Depth == 0 && e.Type.Terminal() {
			terminal = &e
			return
		}
		if e.Depth == 0 && e.Type == event.RunContent {
			streamed.WriteString(e.Content)
		}
		emit(j.append(e))
	})

	r := t.run
	r.Content, r.Status, r.Tools, r.Messages, r.Metrics = res.Content, res.Status, res.Tools, res.Messages, res.Metrics
	r.References, r.ReasoningSteps = res.References, res.ReasoningSteps
	if res.Input != "" && res.Input != message {
		r.Input, r.InputRewritten = res.Input, true
	}
	if r.Status != event.StatusCompleted && r.Content == "" && streamed.Len() > 0 {
		r.Content, r.Partial = streamed.String(), true
	}
	if res.Err != nil {
		r.Error, r.ErrorKind = res.Err.Error(), res.ErrorKind
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, ErrCancelled):
			r.Error = ErrCancelled.Error()
		case errors.Is(cause, ErrSessionDeleted):
			r.Error = ErrSessionDeleted.Error()
		case errors.Is(cause, ErrShutdown):
			r.Error = ErrShutdown.Error()
		}
	}
	// The rest of the log, terminal event included, is committed with the
	// final state, so whoever reads the run finished finds every event
	// logged. The terminal event's index is reserved here, taken below.
	if terminal != nil {
		terminal.Index = j.next()
		if terminal.Type == event.RunCompleted {
			terminal.References = res.References
		}
	}
	// Once close returns no flusher starts: the events are logged now or
	// never.
	logged := j.close()
	var rest []event.Event
	if logged {
		rest = j.take()
		if terminal != nil {
			rest = append(rest, *terminal)
		}
	}
	// Commit even when the client went away: the run happened.
	saveCtx, cancelSave := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelSave()
	saveStart := time.Now()
	err := t.saveMembers(saveCtx, r.ID, res.Members, members)
	if err == nil && res.Status == event.StatusPaused && len(res.Pending) > 0 {
		err = t.savePause(saveCtx, res)
	}
	if err == nil && r.Type == TypeWorkflow && res.Status == event.StatusPaused {
		err = t.saveHeldSteps(saveCtx, res.Members, members)
	}
	if ss, ok := s.opts.Store.(StateSaver); ok && err == nil && (res.State != nil || t.stateSent) {
		state := res.State
		if state == nil {
			state = t.session.State
		}
		err = ss.SetSessionState(saveCtx, t.session.ID, state)
	}
	if err == nil && logged {
		err = s.opts.Events.FinishRunWithEvents(saveCtx, r, rest)
	} else if err == nil {
		err = s.opts.Store.FinishRun(saveCtx, r)
	}
	for _, o := range t.obs {
		o.StoreSpan("store.finish_run", saveStart, time.Now(), err)
	}
	if errors.Is(err, ErrNotFound) && errors.Is(context.Cause(ctx), ErrSessionDeleted) {
		// The session and its runs are gone, as asked: nothing to save,
		// and the run ends cancelled, not failed.
		err = nil
	}
	if err != nil {
		s.log.Error("saving run", "run_id", r.ID, "err", err)
		if terminal != nil {
			terminal.Type, terminal.Content, terminal.ErrorKind = event.RunError, "the run finished but could not be saved: "+err.Error(), "store"
			terminal.References = nil
		}
		if logged {
			// The last events were not committed with the run: log them
			// on their own, with the terminal event the client gets.
			if terminal != nil && len(rest) > 0 {
				rest[len(rest)-1] = *terminal
			}
			t.writeLog(logCtx, rest)
		}
		r.Status, r.Error = event.StatusError, "could not be saved: "+err.Error()
	}
	if err == nil && t.resume != nil && r.ParentRunID != "" && res.Status != event.StatusPaused {
		// A workflow step's run, continued after tool decisions, ended:
		// its workflow goes on.
		if rerr := s.reopenWorkflow(saveCtx, r); rerr != nil {
			s.log.Error("resuming the workflow of a continued step run", "run_id", r.ID, "err", rerr)
		}
	}
	if err == nil && r.Type == TypeWorkflow && res.Status == event.StatusPaused && len(res.Pending) > 0 {
		// A step decided in the inbox while the run still ran (a parallel
		// branch's approval) continues now that the run is PAUSED.
		if _, rerr := s.ResumeDecided(saveCtx, r.ID, ""); rerr != nil {
			s.log.Error("continuing a decided approval step", "run_id", r.ID, "err", rerr)
		}
	}
	// The trace is recorded before the terminal event goes out, so a client
	// that follows the trace link on it finds the run's spans (pending in
	// the recorder if not yet written); the other observers queue work and
	// need not delay the answer.
	for _, o := range t.obs {
		if _, traced := o.(Traced); traced {
			o.RunFinished(r, res.ErrorKind)
		}
	}
	if terminal != nil {
		emit(j.append(*terminal))
	}
	for _, o := range t.obs {
		if _, traced := o.(Traced); !traced {
			o.RunFinished(r, res.ErrorKind)
		}
	}
	if err == nil {
		t.foldAfter(saveCtx, r)
	}
	return r
}

// saveMembers stores the runs of a team's members (and of their members),
// children of parent, in the order they finished. AgentOS stores member
// responses the same way, so clients can show who answered what.
func (t *Turn) saveMembers(ctx context.Context, parent string, results []*agent.Result, seen map[string]member) error {
	for _, m := range results {
		if m == nil || m.RunID == "" {
			continue
		}
		info := seen[m.RunID]
		if info.typ == "" {
			info.typ = TypeAgent
		}
		sess := *t.session // StartRun rewrites its session argument
		mr := &Run{
			ID: m.RunID, SessionID: t.session.ID, ParentRunID: parent, ComponentID: m.Runner, Type: info.typ,
			UserID: t.session.UserID, Input: m.Input, Status: event.StatusRunning, SpecVersion: t.run.SpecVersion,
			Model: m.Model, Provider: m.Provider, CreatedAt: info.started,
		}
		finish := func() error {
			mr.Content, mr.Status, mr.Tools, mr.Messages, mr.Metrics, mr.References = m.Content, m.Status, m.Tools, m.Messages, m.Metrics, m.References
			mr.ReasoningSteps = m.ReasoningSteps
			if m.Err != nil {
				mr.Error = m.Err.Error()
			}
			return t.s.opts.Store.FinishRun(ctx, mr)
		}
		// A nested workflow's child run keeps its id when its parent
		// resumes (after a pause or a crash), and a member that continued
		// its paused run was stored when it paused: update those when they
		// exist.
		err := ErrNotFound
		if m.Continued {
			mr.CreatedAt = time.Time{}
		}
		if info.typ == TypeWorkflow || m.Continued {
			err = finish()
		}
		if errors.Is(err, ErrNotFound) {
			mr.Status, mr.Content, mr.Error = event.StatusRunning, "", ""
			if err = t.s.opts.Store.StartRun(ctx, &sess, mr); err == nil {
				err = finish()
			}
		}
		if err != nil {
			return fmt.Errorf("storing member run %s: %w", m.RunID, err)
		}
		if err := t.saveMembers(ctx, m.RunID, m.Members, seen); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) register(id string, a *active) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active[id] = a
}

func (s *Service) unregister(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.active[id]; ok {
		delete(s.active, id)
		close(a.done)
		s.retainLocked(id, a)
	}
}

// Match selects the active runs Cancel may stop. Zero fields match any run.
type Match struct {
	Kind spec.Kind
	Name string
	// UserID, when set, is the only user whose runs match: a caller bound
	// to a user may only cancel that user's runs.
	UserID string
}

func (m Match) matches(a *active) bool {
	return (m.Kind == "" || m.Kind == a.kind) && (m.Name == "" || m.Name == a.name) && (m.UserID == "" || m.UserID == a.userID)
}

// Cancel stops run runID if m matches it, and reports whether it did. The
// run ends cancelled, with ErrCancelled's message as its error. A run that
// another replica executes (see Options.Cancels) is stopped by that replica
// within Options.CancelPoll of the request being recorded.
func (s *Service) Cancel(ctx context.Context, runID string, m Match) (bool, error) {
	s.mu.Lock()
	a, ok := s.active[runID]
	s.mu.Unlock()
	if ok {
		if !m.matches(a) {
			return false, nil
		}
		a.cancel(ErrCancelled)
		return true, nil
	}
	return s.cancelElsewhere(ctx, runID, m)
}

// StopSessions cancels the active runs of the sessions among ids that a
// caller bound to userID (every run when empty) may see, on this replica and
// (through Options.Cancels) on the others, and waits until they have saved
// their final state or ctx ends, at most Options.SessionStopWait. Deleting a
// session calls it first, so that no run keeps working (and spending) for a
// session that no longer exists, and no final save races the deletion.
func (s *Service) StopSessions(ctx context.Context, ids []string, userID string) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var stopping []*active
	s.mu.Lock()
	for _, a := range s.active {
		if want[a.sessionID] && (userID == "" || a.userID == userID) {
			stopping = append(stopping, a)
		}
	}
	s.mu.Unlock()
	if len(stopping) == 0 && s.opts.Cancels == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.SessionStopWait)
	defer cancel()
	for _, a := range stopping {
		a.cancel(ErrSessionDeleted)
	}
	for _, a := range stopping {
		select {
		case <-a.done:
		case <-ctx.Done():
			s.log.Warn("deleting a session whose run has not stopped yet", "session_id", a.sessionID)
			return
		}
	}
	s.stopElsewhere(ctx, ids, userID)
}

// Active returns how many runs are in flight.
func (s *Service) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// Wait blocks until no run is in flight (runs that start meanwhile
// included) or ctx ends.
func (s *Service) Wait(ctx context.Context) error {
	for {
		s.mu.Lock()
		done := make([]chan struct{}, 0, len(s.active))
		for _, a := range s.active {
			done = append(done, a.done)
		}
		s.mu.Unlock()
		if len(done) == 0 {
			return nil
		}
		for _, d := range done {
			select {
			case <-d:
			case <-ctx.Done():
				return fmt.Errorf("waiting for %d runs to finish: %w", s.Active(), ctx.Err())
			}
		}
	}
}

// cancelAll cancels every active run with cause.
func (s *Service) cancelAll(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.active {
		a.cancel(cause)
	}
}

// Run owns the service's lifetime in the server's errgroup: it waits for ctx
// to end, then drains the runs in flight, letting them finish for up to
// Options.DrainTimeout before it cancels them (cause ErrShutdown) and waits
// for their final saves. A run's own context usually ends sooner: the HTTP
// server cancels its requests' runs after its own shutdown timeout.
// With Options.Liveness it also keeps this replica's heartbeat and recovers
// the runs of dead replicas (see keepAlive) until the drain is over.
func (s *Service) Run(ctx context.Context) error {
	if s.opts.Cancels != nil || s.opts.Events != nil {
		// Cancels and stream requests from other replicas must reach runs
		// through the drain too, so the watcher outlives ctx until Run
		// returns.
		watch, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		wg.Go(func() { s.watchCancels(watch) })
		defer wg.Wait()
		defer stopWatch()
	}
	if len(s.resumable) > 0 {
		var wg sync.WaitGroup
		wg.Go(func() { s.requeue(ctx, s.resumable) })
		defer wg.Wait()
	}
	if s.opts.Liveness != nil {
		// Runs still draining are alive: the heartbeat outlives ctx until
		// Run returns, and only then is it removed.
		live, stopLive := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		wg.Go(func() { s.keepAlive(live) })
		defer wg.Wait()
		defer stopLive()
	}
	<-ctx.Done()
	drain, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	if err := s.Wait(drain); err == nil {
		return nil
	}
	s.log.Warn("drain timeout: cancelling the runs still in flight", "runs", s.Active())
	s.cancelAll(ErrShutdown)
	// Give cancelled runs a moment to save their final state.
	finish, cancelFinish := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelFinish()
	if err := s.Wait(finish); err != nil {
		s.log.Error("runs did not stop after cancellation", "err", err)
	}
	return nil
}

// SessionIDRule is the syntax of client-chosen session ids, as told to
// clients that break it.
const SessionIDRule = "session_id must be 1 to 128 characters of letters, digits, '.', '_', ':' and '-', and not . or .. (a UUID fits)"

// ValidSessionID reports whether id follows SessionIDRule. Ids travel in URL
// paths and headers (X-Session-Id), so they must be short and need no
// escaping: an id with a slash could never be fetched again.
func ValidSessionID(id string) bool {
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

// NewID returns a UUID of version 7: 48 bits of Unix milliseconds, then
// random bits. Runs and sessions are stored by id, so ids that grow with time
// put each new row next to the last in the primary-key index, rather than on
// a random page that the transaction must then write out.
func NewID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:])
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
