package session_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// memLog is an in-memory session.EventLog over a memStore's runs.
type memLog struct {
	st     *memStore
	mu     sync.Mutex
	events map[string][]event.Event // by run, ordered by index
}

var _ session.EventLog = (*memLog)(nil)

func newMemLog(st *memStore) *memLog { return &memLog{st: st, events: map[string][]event.Event{}} }

func (l *memLog) AppendEvents(_ context.Context, runID string, evs []event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		stored := l.events[runID]
		i, found := slices.BinarySearchFunc(stored, e.Index, func(x event.Event, idx int) int { return x.Index - idx })
		if found {
			stored[i] = e
		} else {
			l.events[runID] = slices.Insert(stored, i, e)
		}
	}
	return nil
}

// FinishRunWithEvents logs events, then commits r's state: what a
// transaction does, as seen by the store's finished hook.
func (l *memLog) FinishRunWithEvents(ctx context.Context, r *session.Run, evs []event.Event) error {
	if l.st.run(r.ID).ID == "" {
		return session.ErrNotFound
	}
	if err := l.AppendEvents(ctx, r.ID, evs); err != nil {
		return err
	}
	return l.st.FinishRun(ctx, r)
}

func (l *memLog) EventsAfter(_ context.Context, runID string, after, limit int) ([]event.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []event.Event
	for _, e := range l.events[runID] {
		if e.Index > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *memLog) GetRun(_ context.Context, id string, f session.Filter) (*session.Run, error) {
	r := l.st.run(id)
	if r.ID == "" || f.UserID != "" && r.UserID != f.UserID {
		return nil, session.ErrNotFound
	}
	return &r, nil
}

func (l *memLog) logged(runID string) []event.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events[runID])
}

// withLog gives the fixture's service an event log with short intervals,
// and returns it with a second service on the same store and log: another
// replica.
func withLog(t *testing.T, f *fixture) (*memLog, *session.Service) {
	t.Helper()
	log := newMemLog(f.st)
	opts := session.Options{Targets: f.tg, Store: f.st, Events: log, DrainTimeout: 100 * time.Millisecond,
		FlushInterval: 5 * time.Millisecond, PollInterval: 5 * time.Millisecond}
	f.svc = session.New(opts)
	return log, session.New(opts)
}

// follow resumes run runID after index after on svc and collects its events
// until the stream ends.
func follow(t *testing.T, svc *session.Service, p session.ResumeParams) <-chan []event.Event {
	t.Helper()
	replay, err := svc.Resume(t.Context(), p)
	require.NoError(t, err)
	out := make(chan []event.Event, 1)
	go func() {
		var got []event.Event
		err := replay.Stream(t.Context(), func(e event.Event) error { got = append(got, e); return nil })
		if err != nil {
			got = append(got, event.Event{Type: "stream error: " + event.Type(err.Error())})
		}
		out <- got
	}()
	return out
}

func TestEventsAreIndexedAndLoggedWithTheCommit(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Deltas: []string{"a", "b", "c"}})
	f := newFixture(t, newAgent(t, "greeter", p, 0))
	log, _ := withLog(t, f)
	var atCommit []event.Event
	f.st.finished = func(r session.Run) { atCommit = log.logged(r.ID) }

	turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi", Stream: true})
	require.NoError(t, err)
	c := newCollector()
	turn.Execute(t.Context(), c.emit)
	for i, e := range c.events {
		require.Equal(t, i, e.Index, "indexes count from 0 in the order sent")
	}
	require.Equal(t, event.RunCompleted, c.events[len(c.events)-1].Type)
	require.Equal(t, c.events, atCommit, "every event, the terminal one included, is logged with the final state")
}

func TestResumeFollowsARunLiveAndFromTheLog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		replica bool // resume on the other service, through the log
	}{
		{"same service", false},
		{"another replica", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := fake.New(fake.Step{Deltas: []string{"a", "b"}, Block: true})
			f := newFixture(t, newAgent(t, "greeter", p, 0))
			log, other := withLog(t, f)
			svc := f.svc
			if tt.replica {
				svc = other
			}
			turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi", UserID: "ann", Stream: true})
			require.NoError(t, err)
			c := newCollector()
			done := make(chan struct{})
			go func() {
				defer close(done)
				turn.Execute(t.Context(), c.emit)
			}()
			c.waitFor(t, event.RunContent)
			c.waitFor(t, event.RunContent)
			if tt.replica {
				require.Eventually(t, func() bool { return len(log.logged(turn.RunID())) >= 3 }, 5*time.Second, time.Millisecond)
			}
			got := follow(t, svc, session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), After: 0, UserID: "ann"})
			ok, err := f.svc.Cancel(t.Context(), turn.RunID(), session.Match{})
			require.NoError(t, err)
			require.True(t, ok)
			<-done
			resumed := <-got
			require.Equal(t, c.events[1:], resumed, "the events after index 0, once, in order")
			require.Equal(t, event.RunCancelled, resumed[len(resumed)-1].Type)

			// Finished: the rest comes from the log at once.
			again := <-follow(t, other, session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), After: 2})
			require.Equal(t, c.events[3:], again)
		})
	}
}

func TestResumeRefusals(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Content: "done"})
	f := newFixture(t, newAgent(t, "greeter", p, 0))
	_, _ = withLog(t, f)
	turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi", UserID: "ann"})
	require.NoError(t, err)
	turn.Execute(t.Context(), func(event.Event) {})
	tests := []struct {
		name string
		p    session.ResumeParams
	}{
		{"unknown run", session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: "nope"}},
		{"another agent", session.ResumeParams{Kind: spec.KindAgent, Name: "other", RunID: turn.RunID()}},
		{"a team", session.ResumeParams{Kind: spec.KindTeam, Name: "greeter", RunID: turn.RunID()}},
		{"another user", session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), UserID: "bob"}},
	}
	for _, tt := range tests {
		_, err := f.svc.Resume(t.Context(), tt.p)
		var se *session.Error
		require.True(t, errors.As(err, &se), tt.name)
		require.ErrorIs(t, err, session.ErrNotFound, tt.name)
	}
}

func TestResumeOfARunWithoutLogEndsWithItsState(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Content: "the answer"})
	f := newFixture(t, newAgent(t, "greeter", p, 0))
	// The run executes on a service that keeps no log (before the log
	// existed); a replica with one resumes it.
	turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi"})
	require.NoError(t, err)
	turn.Execute(t.Context(), func(event.Event) {})
	_, other := withLog(t, f)
	got := <-follow(t, other, session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), After: -1})
	require.Len(t, got, 1)
	require.Equal(t, event.RunCompleted, got[0].Type)
	require.Equal(t, "the answer", got[0].Content)
	require.Equal(t, turn.RunID(), got[0].RunID)
	require.Equal(t, "greeter", got[0].AgentID)
}
