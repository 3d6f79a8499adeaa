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
	// wanted holds the stream requests not claimed yet; requests counts
	// them all.
	wanted   map[string]bool
	requests int
}

var _ session.EventLog = (*memLog)(nil)

func newMemLog(st *memStore) *memLog {
	return &memLog{st: st, events: map[string][]event.Event{}, wanted: map[string]bool{}}
}

func (l *memLog) RequestStream(_ context.Context, runID string) (bool, error) {
	r := l.st.run(runID)
	if r.ID == "" || r.Status != event.StatusRunning || r.ParentRunID != "" {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wanted[runID] = true
	l.requests++
	return true, nil
}

func (l *memLog) ClaimStreams(_ context.Context, ids []string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, id := range ids {
		if l.wanted[id] {
			delete(l.wanted, id)
			out = append(out, id)
		}
	}
	return out, nil
}

// requested returns how many stream requests were recorded.
func (l *memLog) requested() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests
}

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
// replica. Both watch for stream requests until the test ends.
func withLog(t *testing.T, f *fixture) (*memLog, *session.Service) {
	t.Helper()
	log := newMemLog(f.st)
	opts := session.Options{Targets: f.tg, Store: f.st, Events: log, DrainTimeout: 100 * time.Millisecond,
		FlushInterval: 5 * time.Millisecond, PollInterval: 5 * time.Millisecond, CancelPoll: 5 * time.Millisecond}
	f.svc = session.New(opts)
	other := session.New(opts)
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	for _, svc := range []*session.Service{f.svc, other} {
		wg.Go(func() { _ = svc.Run(ctx) })
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	return log, other
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

func TestEventsAreLoggedOnlyWhenKept(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keep bool
	}{
		{"foreground run nobody resumes", false},
		{"kept from the start", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := fake.New(fake.Step{Deltas: []string{"a", "b", "c"}})
			f := newFixture(t, newAgent(t, "greeter", p, 0))
			log, other := withLog(t, f)
			var atCommit []event.Event
			f.st.finished = func(r session.Run) { atCommit = log.logged(r.ID) }

			turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi",
				Stream: true, KeepEvents: tt.keep})
			require.NoError(t, err)
			c := newCollector()
			turn.Execute(t.Context(), c.emit)
			for i, e := range c.events {
				require.Equal(t, i, e.Index, "indexes count from 0 in the order sent")
			}
			last := c.events[len(c.events)-1]
			require.Equal(t, event.RunCompleted, last.Type)
			if tt.keep {
				require.Equal(t, c.events, atCommit, "every event, the terminal one included, is logged with the final state")
			} else {
				require.Empty(t, log.logged(turn.RunID()), "a run nobody resumes elsewhere writes no events")
			}

			// The executing service still has every event, from its
			// journal, right after the end.
			here := <-follow(t, f.svc, session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), After: 1})
			require.Equal(t, c.events[2:], here)

			// Another replica gets what the log has: every event when kept,
			// else the terminal event made from the stored run.
			there := <-follow(t, other, session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), After: 1})
			if tt.keep {
				require.Equal(t, c.events[2:], there)
			} else {
				require.Len(t, there, 1)
				require.Equal(t, event.RunCompleted, there[0].Type)
				require.Equal(t, last.Content, there[0].Content)
				require.Equal(t, 2, there[0].Index)
			}
			require.Zero(t, log.requested(), "a finished run is not asked for")
		})
	}
}

func TestJournalRetention(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		retention time.Duration
		kept      bool
	}{
		{"kept for the retention", time.Minute, true},
		{"expired", time.Millisecond, false},
		{"none kept", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := fake.New(fake.Step{Deltas: []string{"a", "b"}})
			f := newFixture(t, newAgent(t, "greeter", p, 0))
			f.svc = session.New(session.Options{Targets: f.tg, Store: f.st, JournalRetention: tt.retention})
			turn, err := f.svc.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "greeter", Message: "hi", Stream: true})
			require.NoError(t, err)
			c := newCollector()
			turn.Execute(t.Context(), c.emit)
			time.Sleep(5 * time.Millisecond)
			replay, err := f.svc.Resume(t.Context(), session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), After: -1})
			if !tt.kept {
				require.ErrorIs(t, err, session.ErrNotFound, "without a log, an ended run's events are gone with its journal")
				return
			}
			require.NoError(t, err)
			var got []event.Event
			require.NoError(t, replay.Stream(t.Context(), func(e event.Event) error { got = append(got, e); return nil }))
			require.Equal(t, c.events, got)
		})
	}
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
			require.Empty(t, log.logged(turn.RunID()), "nothing is logged while nobody resumes elsewhere")
			got := follow(t, svc, session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), After: 0, UserID: "ann"})
			if tt.replica {
				// The stream request reaches the executing service, which
				// logs the run's events from the first.
				require.Eventually(t, func() bool { return len(log.logged(turn.RunID())) >= 3 }, 5*time.Second, time.Millisecond)
				require.Equal(t, c.events[:3], log.logged(turn.RunID())[:3])
			} else {
				require.Zero(t, log.requested(), "a resume on the executing service asks no one")
			}
			ok, err := f.svc.Cancel(t.Context(), turn.RunID(), session.Match{})
			require.NoError(t, err)
			require.True(t, ok)
			<-done
			resumed := <-got
			require.Equal(t, c.events[1:], resumed, "the events after index 0, once, in order")
			require.Equal(t, event.RunCancelled, resumed[len(resumed)-1].Type)

			// Finished: the rest comes at once, from the journal kept after
			// the end or from the log.
			again := <-follow(t, svc, session.ResumeParams{Kind: spec.KindAgent, Name: "greeter", RunID: turn.RunID(), After: 2})
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
