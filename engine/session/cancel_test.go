package session_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// memCancels is session.Cancels over a memStore, with the SQL store's rules:
// a request is recorded only for a RUNNING top-level run that the match
// selects, and claimed once.
type memCancels struct {
	st      *memStore
	mu      sync.Mutex
	pending map[string]session.CancelReason
}

var _ session.Cancels = (*memCancels)(nil)

func (c *memCancels) request(ok func(r *session.Run) bool, reason session.CancelReason) []string {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, r := range c.st.runs {
		if r.Status == event.StatusRunning && r.ParentRunID == "" && ok(r) {
			c.pending[r.ID] = reason
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func (c *memCancels) RequestCancel(_ context.Context, runID string, m session.RunMatch, reason session.CancelReason) (bool, error) {
	return len(c.request(func(r *session.Run) bool {
		return r.ID == runID && (m.Type == "" || m.Type == r.Type) && (m.ComponentID == "" || m.ComponentID == r.ComponentID) && (m.UserID == "" || m.UserID == r.UserID)
	}, reason)) > 0, nil
}

func (c *memCancels) RequestSessionCancels(_ context.Context, ids []string, userID string, reason session.CancelReason) ([]string, error) {
	return c.request(func(r *session.Run) bool {
		return slices.Contains(ids, r.SessionID) && (userID == "" || userID == r.UserID)
	}, reason), nil
}

func (c *memCancels) ClaimCancels(_ context.Context, ids []string) (map[string]session.CancelReason, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]session.CancelReason{}
	for _, id := range ids {
		if r, ok := c.pending[id]; ok {
			out[id] = r
			delete(c.pending, id)
		}
	}
	return out, nil
}

func (c *memCancels) Running(_ context.Context, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		if c.st.run(id).Status == event.StatusRunning {
			out = append(out, id)
		}
	}
	return out, nil
}

// TestServiceStopsRunsOfOtherReplicas: two services on one store, as two
// replicas on one database. A cancel or a session deletion that reaches the
// replica not executing the run stops it on the other with the same cause as
// a local one, and the deletion waits for the run's final save.
func TestServiceStopsRunsOfOtherReplicas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stop  func(t *testing.T, b *session.Service, st *memStore, turn *session.Turn)
		error string
	}{
		{"cancel", func(t *testing.T, b *session.Service, _ *memStore, turn *session.Turn) {
			require.False(t, cancel(t, b, turn.RunID(), session.Match{UserID: "bob"}), "another user's run")
			require.False(t, cancel(t, b, turn.RunID(), session.Match{Kind: spec.KindTeam}), "another kind")
			require.False(t, cancel(t, b, turn.RunID(), session.Match{Name: "fast"}), "another agent")
			require.False(t, cancel(t, b, "no-such-run", session.Match{}))
			require.True(t, cancel(t, b, turn.RunID(), session.Match{Kind: spec.KindAgent, Name: "slow", UserID: "ann"}))
		}, session.ErrCancelled.Error()},
		{"session deleted", func(t *testing.T, b *session.Service, st *memStore, turn *session.Turn) {
			b.StopSessions(t.Context(), []string{turn.SessionID()}, "bob")
			require.Equal(t, event.StatusRunning, st.run(turn.RunID()).Status, "bob may not stop ann's sessions")
			b.StopSessions(t.Context(), []string{turn.SessionID()}, "ann")
			require.Equal(t, event.StatusCancelled, st.run(turn.RunID()).Status, "stopped and saved before the deletion")
			st.deleteSession(turn.SessionID())
		}, session.ErrSessionDeleted.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newMemStore()
			cancels := &memCancels{st: st, pending: map[string]session.CancelReason{}}
			tg := &targets{runners: map[string]agent.Runner{}}
			slow := newAgent(t, "slow", fake.New(fake.Step{Deltas: []string{"Partial "}, Block: true}), 0)
			tg.runners["slow"] = slow
			opts := session.Options{Targets: tg, Store: st, Cancels: cancels, CancelPoll: 10 * time.Millisecond, DrainTimeout: 100 * time.Millisecond}
			a, b := session.New(opts), session.New(opts)
			ctx, stop := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer stop()
			wg.Go(func() { _ = a.Run(ctx) })
			wg.Go(func() { _ = b.Run(ctx) })

			turn, err := a.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "slow", Message: "hi", UserID: "ann", Stream: true})
			require.NoError(t, err)
			c := newCollector()
			done := make(chan *session.Run, 1)
			go func() { done <- turn.Execute(t.Context(), c.emit) }()
			c.waitFor(t, event.RunContent)
			start := time.Now()
			tt.stop(t, b, st, turn)
			run := <-done
			require.Less(t, time.Since(start), time.Second)
			require.Equal(t, event.StatusCancelled, run.Status)
			require.Equal(t, tt.error, run.Error)
			require.True(t, run.Partial)
			require.Zero(t, a.Active())
		})
	}
}
