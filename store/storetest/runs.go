package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

func testComponentRuns(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s1 := agentSession("s1", "alice", "helper")
	_, r1 := startRun(t, db, s1, "r1", "one", at(0))
	finishRun(t, db, r1, event.StatusCompleted, at(1))
	startRun(t, db, s1, "r2", "two", at(10)) // still running
	_, r3 := startRun(t, db, agentSession("s2", "bob", "helper"), "r3", "three", at(20))
	finishRun(t, db, r3, event.StatusError, at(21))
	// Two runs created at the same instant: the id breaks the tie.
	for _, id := range []string{"r4", "r5"} {
		_, r := startRun(t, db, s1, id, id, at(30))
		finishRun(t, db, r, event.StatusCompleted, at(31))
	}
	startRun(t, db, agentSession("s3", "alice", "other"), "o1", "other agent", at(40))
	// A team's run and its member's: members are part of their team's run.
	team := &store.Session{ID: "s4", Type: store.SessionTeam, ComponentID: "crew", UserID: "alice"}
	startRun(t, db, team, "t1", "team", at(50))
	require.NoError(t, db.StartRun(ctx, team, &store.Run{ID: "m1", ParentRunID: "t1", ComponentID: "helper",
		Type: store.SessionAgent, Input: "member", CreatedAt: at(51)}))

	tests := []struct {
		name  string
		q     store.RunQuery
		want  []string
		total int
	}{
		{"newest first, members left out", store.RunQuery{Type: "agent", ComponentID: "helper"}, []string{"r5", "r4", "r3", "r2", "r1"}, 5},
		{"one user", store.RunQuery{Type: "agent", ComponentID: "helper", Filter: store.Filter{UserID: "alice"}}, []string{"r5", "r4", "r2", "r1"}, 4},
		{"one session", store.RunQuery{Type: "agent", ComponentID: "helper", SessionID: "s2"}, []string{"r3"}, 1},
		{"another user's session", store.RunQuery{Type: "agent", ComponentID: "helper", SessionID: "s2", Filter: store.Filter{UserID: "alice"}}, []string{}, 0},
		{"one status", store.RunQuery{Type: "agent", ComponentID: "helper", Status: event.StatusRunning}, []string{"r2"}, 1},
		{"session and status", store.RunQuery{Type: "agent", ComponentID: "helper", SessionID: "s1", Status: event.StatusCompleted}, []string{"r5", "r4", "r1"}, 3},
		{"second page", store.RunQuery{Type: "agent", ComponentID: "helper", Limit: 2, Page: 2}, []string{"r3", "r2"}, 5},
		{"last page", store.RunQuery{Type: "agent", ComponentID: "helper", Limit: 2, Page: 3}, []string{"r1"}, 5},
		{"past the end", store.RunQuery{Type: "agent", ComponentID: "helper", Limit: 2, Page: 4}, []string{}, 5},
		{"a team", store.RunQuery{Type: "team", ComponentID: "crew"}, []string{"t1"}, 1},
		{"an agent named like a team", store.RunQuery{Type: "agent", ComponentID: "crew"}, []string{}, 0},
		{"unknown component", store.RunQuery{Type: "agent", ComponentID: "nobody"}, []string{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs, total, err := db.ListComponentRuns(t.Context(), tc.q)
			require.NoError(t, err)
			got := make([]string, len(runs))
			for i, r := range runs {
				got[i] = r.ID
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.total, total)
		})
	}

	t.Run("runs as GetRun returns them, without messages", func(t *testing.T) {
		runs, _, err := db.ListComponentRuns(ctx, store.RunQuery{Type: "agent", ComponentID: "helper", SessionID: "s1", Status: event.StatusCompleted, Limit: 1, Page: 3})
		require.NoError(t, err)
		require.Len(t, runs, 1)
		whole, err := db.GetRun(ctx, "r1", store.Filter{})
		require.NoError(t, err)
		require.NotEmpty(t, whole.Messages)
		whole.Messages = nil
		require.Equal(t, *whole, runs[0])
	})

	t.Run("invalid", func(t *testing.T) {
		for _, q := range []store.RunQuery{{Type: "robot", ComponentID: "helper"}, {Type: "agent"}} {
			_, _, err := db.ListComponentRuns(ctx, q)
			require.ErrorIs(t, err, store.ErrInvalid)
		}
	})
}
