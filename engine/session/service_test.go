package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/team"
	"github.com/troupehq/troupe/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memStore is an in-memory session.Store with the SQL store's rules: a
// session belongs to one user and target, finishing an unknown run is
// ErrNotFound, history is the completed top-level runs' messages.
type memStore struct {
	mu          sync.Mutex
	sessions    map[string]session.Session
	runs        []*session.Run // in start order
	interrupted []session.Run
	// finished is told of each run whose final state is committed.
	finished func(r session.Run)
}

var _ session.Store = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{sessions: map[string]session.Session{}} }

func (m *memStore) StartRun(_ context.Context, s *session.Session, r *session.Run) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.sessions[s.ID]; ok {
		if old.UserID != s.UserID || old.Type != s.Type || old.ComponentID != s.ComponentID {
			return fmt.Errorf("session %q: %w", s.ID, session.ErrNotFound)
		}
		*s = old
	} else {
		s.CreatedAt = time.Now()
		m.sessions[s.ID] = *s
	}
	r.Status, r.SessionID, r.UserID = event.StatusRunning, s.ID, s.UserID
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	cp := *r
	m.runs = append(m.runs, &cp)
	return nil
}

func (m *memStore) FinishRun(_ context.Context, r *session.Run) error {
	m.mu.Lock()
	if !r.Status.Terminal() {
		m.mu.Unlock()
		return fmt.Errorf("status %q is not final", r.Status)
	}
	i := slices.IndexFunc(m.runs, func(x *session.Run) bool { return x.ID == r.ID })
	if i < 0 {
		m.mu.Unlock()
		return fmt.Errorf("run %s: %w", r.ID, session.ErrNotFound)
	}
	r.UpdatedAt = time.Now()
	cp := *r
	m.runs[i] = &cp
	finished := m.finished
	m.mu.Unlock()
	if finished != nil {
		finished(cp)
	}
	return nil
}

func (m *memStore) GetSession(_ context.Context, id string, f session.Filter) (*session.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || f.UserID != "" && s.UserID != f.UserID {
		return nil, session.ErrNotFound
	}
	return &s, nil
}

func (m *memStore) History(_ context.Context, sessionID string, n int) ([][]model.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var turns [][]model.Message
	for _, r := range slices.Backward(m.runs) {
		if r.SessionID == sessionID && r.ParentRunID == "" && r.Status == event.StatusCompleted && len(turns) < n {
			turns = append(turns, r.Messages)
		}
	}
	slices.Reverse(turns)
	return turns, nil
}

func (m *memStore) Interrupted() []session.Run { return m.interrupted }

// deleteSession drops a session and its runs, as deleting it does.
func (m *memStore) deleteSession(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	m.runs = slices.DeleteFunc(m.runs, func(r *session.Run) bool { return r.SessionID == id })
}

func (m *memStore) run(id string) session.Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runs {
		if r.ID == id {
			return *r
		}
	}
	return session.Run{}
}

func (m *memStore) all() []session.Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]session.Run, len(m.runs))
	for i, r := range m.runs {
		out[i] = *r
	}
	return out
}

// targets serves runners by name and counts the pins not yet released.
type targets struct {
	runners map[string]agent.Runner
	pinned  atomic.Int64
}

func (t *targets) Pin(kind spec.Kind, name string) (session.Target, error) {
	if name == "broken" {
		return session.Target{}, fmt.Errorf("%s %q is broken: line 3: bad field: %w", kind.Lower(), name, session.ErrBroken)
	}
	r, ok := t.runners[name]
	if !ok {
		return session.Target{}, fmt.Errorf("%s %q: %w", kind.Lower(), name, session.ErrNotFound)
	}
	t.pinned.Add(1)
	var once sync.Once
	return session.Target{Runner: r, Version: "v1", Release: func() { once.Do(func() { t.pinned.Add(-1) }) }}, nil
}

// observer records what the service tells it, as tracing and metrics see it.
type observer struct {
	mu          sync.Mutex
	started     []string
	events      map[string][]event.Type
	storeSpans  map[string]int
	finished    map[string]event.Status
	interrupted []string
}

func newObserver() *observer {
	return &observer{events: map[string][]event.Type{}, storeSpans: map[string]int{}, finished: map[string]event.Status{}}
}

func (o *observer) RunStarted(r *session.Run, _ session.Link) session.RunObserver {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started = append(o.started, r.ID)
	return &runObserver{o: o, id: r.ID}
}

func (o *observer) RunInterrupted(r *session.Run) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.interrupted = append(o.interrupted, r.ID)
}

type runObserver struct {
	o  *observer
	id string
}

func (r *runObserver) Event(e event.Event) {
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	if e.Depth == 0 {
		r.o.events[r.id] = append(r.o.events[r.id], e.Type)
	}
}

func (r *runObserver) StoreSpan(string, time.Time, time.Time, error) {
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	r.o.storeSpans[r.id]++
}

func (r *runObserver) RunFinished(run *session.Run, _ string) {
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	r.o.finished[r.id] = run.Status
}

func (r *runObserver) TraceContext() (string, string) { return "trace-" + r.id, "span" }

var limits = spec.Limits{MaxToolCalls: 10, Timeout: spec.Duration(10 * time.Second), ToolTimeout: spec.Duration(2 * time.Second), MaxToolResult: 1000, MaxModelTurns: 10}

func newAgent(t *testing.T, name string, p model.Provider, history int) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Config{Spec: &spec.Agent{Meta: spec.Meta{Kind: spec.KindAgent, Name: name}, Model: "fake/m", History: &history, Limits: limits},
		Provider: p, Model: "m", Vendor: "fake"})
	require.NoError(t, err)
	return a
}

type fixture struct {
	st  *memStore
	tg  *targets
	obs *observer
	svc *session.Service
}

func newFixture(t *testing.T, runners ...agent.Runner) *fixture {
	t.Helper()
	f := &fixture{st: newMemStore(), tg: &targets{runners: map[string]agent.Runner{}}, obs: newObserver()}
	for _, r := range runners {
		f.tg.runners[r.Name()] = r
	}
	f.svc = session.New(session.Options{Targets: f.tg, Store: f.st, Observers: []session.Observer{f.obs},
		DrainTimeout: 100 * time.Millisecond, SessionStopWait: 5 * time.Second})
	t.Cleanup(func() { require.Zero(t, f.tg.pinned.Load(), "every pinned snapshot is released") })
	return f
}

// collector gathers a run's events.
type collector struct {
	mu     sync.Mutex
	events []event.Event
	seen   chan event.Type // each top-level event's type, for tests that wait on one
}

func newCollector() *collector { return &collector{seen: make(chan event.Type, 64)} }

func (c *collector) emit(e event.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	if e.Depth == 0 {
		c.seen <- e.Type
	}
}

func (c *collector) waitFor(t *testing.T, typ event.Type) {
	t.Helper()
	for {
		select {
		case got := <-c.seen:
			if got == typ {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", typ)
		}
	}
}

func (c *collector) types() []event.Type {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []event.Type
	for _, e := range c.events {
		if e.Depth == 0 {
			out = append(out, e.Type)
		}
	}
	return out
}

func TestServiceRunsPersistsAndObserves(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Deltas: []string{"Hello", ", world"}, Usage: model.Usage{InputTokens: 3, OutputTokens: 2}})
	f := newFixture(t, newAgent(t, "greeter", p, 0))
	// The terminal event comes after the final state is committed.
	committed := make(chan session.Run, 1)
	f.st.finished = func(r session.Run) { committed <- r }

	turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi", UserID: "ann", Stream: true})
	require.NoError(t, err)
	require.Len(t, turn.RunID(), 36)
	require.Equal(t, byte('7'), turn.RunID()[14], "a UUIDv7")
	require.NotEqual(t, turn.RunID(), turn.SessionID())
	traceID, _ := turn.TraceContext()
	require.Equal(t, "trace-"+turn.RunID(), traceID)
	require.Equal(t, event.StatusRunning, f.st.run(turn.RunID()).Status)

	var sawCommitted bool
	c := newCollector()
	run := turn.Execute(t.Context(), func(e event.Event) {
		if e.Type == event.RunCompleted {
			select {
			case r := <-committed:
				sawCommitted = r.Status == event.StatusCompleted
			default:
			}
		}
		c.emit(e)
	})
	require.True(t, sawCommitted, "RunCompleted is emitted after the run is committed")
	require.Equal(t, []event.Type{event.RunStarted, event.RunContent, event.RunContent, event.ModelRequestCompleted, event.RunCompleted}, c.types())

	stored := f.st.run(turn.RunID())
	require.Equal(t, event.StatusCompleted, stored.Status)
	require.Equal(t, "Hello, world", stored.Content)
	require.Equal(t, turn.SessionID(), stored.SessionID)
	require.Equal(t, "ann", stored.UserID)
	require.Equal(t, "greeter", stored.ComponentID)
	require.Equal(t, session.TypeAgent, stored.Type)
	require.Equal(t, "v1", stored.SpecVersion)
	require.Equal(t, "m", stored.Model)
	require.Equal(t, "fake", stored.Provider)
	require.Equal(t, 5, stored.Metrics.TotalTokens)
	require.Equal(t, stored.Status, run.Status)

	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	require.Equal(t, []string{turn.RunID()}, f.obs.started)
	require.Equal(t, c.types(), f.obs.events[turn.RunID()])
	require.Equal(t, 1, f.obs.storeSpans[turn.RunID()])
	require.Equal(t, map[string]event.Status{turn.RunID(): event.StatusCompleted}, f.obs.finished)
	require.Zero(t, f.svc.Active())
}

func TestServiceStartRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newAgent(t, "greeter", fake.New(fake.Step{Content: "one"}), 0))
	turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi", UserID: "ann"})
	require.NoError(t, err)
	turn.Execute(t.Context(), func(event.Event) {})

	tests := []struct {
		name    string
		p       session.Params
		kind    error
		message string
	}{
		{"malformed session id", session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi", SessionID: "a/b"}, session.ErrInvalid, session.SessionIDRule},
		{"NUL byte", session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "a\x00b"}, session.ErrInvalid, "message contains a NUL byte (\\u0000); remove it and send again"},
		{"unknown agent", session.Params{Kind: spec.KindAgent, Name: "nobody", Message: "hi"}, session.ErrNotFound, `agent "nobody" not found`},
		{"unknown team", session.Params{Kind: spec.KindTeam, Name: "nobody", Message: "hi"}, session.ErrNotFound, `team "nobody" not found`},
		{"broken agent", session.Params{Kind: spec.KindAgent, Name: "broken", Message: "hi"}, session.ErrBroken,
			`agent "broken" is broken: line 3: bad field: broken definition (fix the spec file; the previous version is not available)`},
		{"another user's session", session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi", SessionID: turn.SessionID(), UserID: "bob", BoundUser: true},
			session.ErrSessionNotFound, fmt.Sprintf("session %q not found", turn.SessionID())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Start(t.Context(), tt.p)
			require.ErrorIs(t, err, tt.kind)
			var se *session.Error
			require.ErrorAs(t, err, &se)
			require.Equal(t, tt.message, se.Error())
			if errors.Is(tt.kind, session.ErrNotFound) {
				require.ErrorIs(t, err, session.ErrNotFound)
			}
		})
	}
	require.Len(t, f.st.all(), 1, "refused runs store nothing")
}

func TestServiceContinuesSessionWithHistory(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Content: "first answer"}, fake.Step{Content: "second answer"})
	f := newFixture(t, newAgent(t, "greeter", p, 5))
	first, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "first", UserID: "ann"})
	require.NoError(t, err)
	first.Execute(t.Context(), func(event.Event) {})

	// An unbound caller continuing the session acts as its user.
	second, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "second", SessionID: first.SessionID()})
	require.NoError(t, err)
	run := second.Execute(t.Context(), func(event.Event) {})
	require.Equal(t, event.StatusCompleted, run.Status)
	require.Equal(t, "ann", run.UserID)
	require.Equal(t, first.SessionID(), run.SessionID)

	reqs := p.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, []model.Message{
		{Role: model.RoleUser, Content: "first"},
		{Role: model.RoleAssistant, Content: "first answer"},
		{Role: model.RoleUser, Content: "second"},
	}, reqs[1].Messages)
}

func TestServiceCancelKeepsPartialAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stop  func(f *fixture, turn *session.Turn) // ends the run
		error string
	}{
		{"cancel", func(f *fixture, turn *session.Turn) {
			require.False(t, cancel(t, f.svc, turn.RunID(), session.Match{UserID: "bob"}), "another user's run")
			require.False(t, cancel(t, f.svc, turn.RunID(), session.Match{Kind: spec.KindTeam}), "another kind")
			require.False(t, cancel(t, f.svc, "no-such-run", session.Match{}))
			require.True(t, cancel(t, f.svc, turn.RunID(), session.Match{Kind: spec.KindAgent, Name: "slow", UserID: "ann"}))
		}, session.ErrCancelled.Error()},
		{"session deleted", func(f *fixture, turn *session.Turn) {
			// Deleting a session stops its runs first and waits for their save.
			f.svc.StopSessions(context.Background(), []string{turn.SessionID()}, "ann")
			require.Equal(t, event.StatusCancelled, f.st.run(turn.RunID()).Status)
			f.st.deleteSession(turn.SessionID())
		}, session.ErrSessionDeleted.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newAgent(t, "slow", fake.New(fake.Step{Deltas: []string{"Partial "}, Block: true}), 0))
			turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "slow", Message: "hi", UserID: "ann", Stream: true})
			require.NoError(t, err)
			c := newCollector()
			done := make(chan *session.Run, 1)
			go func() { done <- turn.Execute(t.Context(), c.emit) }()
			c.waitFor(t, event.RunContent)
			require.Equal(t, 1, f.svc.Active())
			tt.stop(f, turn)
			run := <-done
			require.Equal(t, event.StatusCancelled, run.Status)
			require.Equal(t, tt.error, run.Error)
			require.Equal(t, "Partial ", run.Content)
			require.True(t, run.Partial)
			require.Equal(t, event.RunCancelled, c.types()[len(c.types())-1])
			require.Zero(t, f.svc.Active())
		})
	}
}

func TestServiceStoresTeamMemberRuns(t *testing.T) {
	t.Parallel()
	writer := newAgent(t, "writer", fake.New(fake.Step{Content: "A poem."}), 0)
	leader := fake.New(fake.Step{ToolCalls: []model.ToolCall{{ID: "c1", Name: team.RouteTool, Arguments: `{"member":"writer","task":"write a poem"}`}}})
	crew, err := team.New(team.Config{Spec: &spec.Team{Meta: spec.Meta{Kind: spec.KindTeam, Name: "crew"}, Mode: spec.ModeRoute, Model: "fake/m", Limits: limits},
		Provider: leader, Model: "m", Vendor: "fake", Members: []agent.Runner{writer}})
	require.NoError(t, err)
	f := newFixture(t, crew)

	turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindTeam, Name: "crew", Message: "a poem please", UserID: "ann", Stream: true})
	require.NoError(t, err)
	run := turn.Execute(t.Context(), func(event.Event) {})
	require.Equal(t, event.StatusCompleted, run.Status)
	require.Equal(t, "A poem.", run.Content)

	runs := f.st.all()
	require.Len(t, runs, 2)
	parent, member := runs[0], runs[1]
	require.Equal(t, turn.RunID(), parent.ID)
	require.Equal(t, session.TypeTeam, parent.Type)
	require.Equal(t, turn.RunID(), member.ParentRunID)
	require.Equal(t, turn.SessionID(), member.SessionID)
	require.Equal(t, "writer", member.ComponentID)
	require.Equal(t, session.TypeAgent, member.Type)
	require.Equal(t, "ann", member.UserID)
	require.Equal(t, "write a poem", member.Input)
	require.Equal(t, "A poem.", member.Content)
	require.Equal(t, event.StatusCompleted, member.Status)
	require.False(t, member.CreatedAt.IsZero())
	require.False(t, member.CreatedAt.Before(parent.CreatedAt))
}

func TestServiceDrainsAtShutdown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newAgent(t, "slow", fake.New(fake.Step{Deltas: []string{"Partial "}, Block: true}), 0))
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- f.svc.Run(ctx) }()

	turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "slow", Message: "hi", Stream: true})
	require.NoError(t, err)
	c := newCollector()
	done := make(chan *session.Run, 1)
	// The run's own context never ends: only the drain stops it.
	go func() { done <- turn.Execute(context.WithoutCancel(t.Context()), c.emit) }()
	c.waitFor(t, event.RunContent)
	stop()
	require.NoError(t, <-served)
	run := <-done
	require.Equal(t, event.StatusCancelled, run.Status)
	require.Equal(t, session.ErrShutdown.Error(), run.Error)
	require.Equal(t, event.StatusCancelled, f.st.run(turn.RunID()).Status, "saved before Run returned")
	require.NoError(t, f.svc.Wait(t.Context()))
}

func TestServiceReportsInterruptedRuns(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	st.interrupted = []session.Run{
		{ID: "r1", Status: event.StatusError},
		{ID: "r1-writer-1", ParentRunID: "r1", Status: event.StatusError},
	}
	obs := newObserver()
	session.New(session.Options{Targets: &targets{}, Store: st, Observers: []session.Observer{obs}})
	require.Equal(t, []string{"r1"}, obs.interrupted, "members belong to their team's run")
}

func TestValidSessionID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{"0199b5c4-7a4e-7c1e-9a3b-5f6e7d8c9b0a", true},
		{"chat:42_a.b", true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{string(make([]byte, 129)), false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, session.ValidSessionID(tt.id), tt.id)
	}
}

// cancel calls svc.Cancel, which must not fail.
func cancel(t *testing.T, svc *session.Service, runID string, m session.Match) bool {
	t.Helper()
	ok, err := svc.Cancel(t.Context(), runID, m)
	require.NoError(t, err)
	return ok
}
