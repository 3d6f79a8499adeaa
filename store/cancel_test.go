package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
)

// TestCancelRequests: a cancel is recorded only for a RUNNING top-level run
// that the match selects; the replica executing it claims it once; a
// session's running runs are requested together; Running tells which runs
// have not finished.
func TestCancelRequests(t *testing.T) {
	t.Parallel()
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := t.Context()
			start := func(sessionID, user string) *store.Run {
				r := &store.Run{ID: session.NewID(), SessionID: sessionID, ComponentID: "writer", Type: store.SessionAgent, UserID: user, Status: event.StatusRunning}
				require.NoError(t, db.StartRun(ctx, &store.Session{ID: sessionID, Type: store.SessionAgent, ComponentID: "writer", UserID: user}, r))
				return r
			}
			s1, s2 := session.NewID(), session.NewID()
			run, other, done := start(s1, "ann"), start(s1, "ann"), start(s2, "bob")
			done.Status = event.StatusCompleted
			require.NoError(t, db.FinishRun(ctx, done))

			tests := []struct {
				name  string
				runID string
				m     session.RunMatch
				want  bool
			}{
				{"unknown run", "no-such-run", session.RunMatch{}, false},
				{"finished run", done.ID, session.RunMatch{}, false},
				{"another user", run.ID, session.RunMatch{UserID: "bob"}, false},
				{"another kind", run.ID, session.RunMatch{Type: store.SessionTeam}, false},
				{"another agent", run.ID, session.RunMatch{ComponentID: "calc"}, false},
				{"match", run.ID, session.RunMatch{Type: store.SessionAgent, ComponentID: "writer", UserID: "ann"}, true},
				{"again", run.ID, session.RunMatch{}, true},
			}
			for _, tc := range tests {
				ok, err := db.RequestCancel(ctx, tc.runID, tc.m, session.ReasonCancelled)
				require.NoError(t, err, tc.name)
				require.Equal(t, tc.want, ok, tc.name)
			}
			got, err := db.ClaimCancels(ctx, []string{run.ID, other.ID, done.ID})
			require.NoError(t, err)
			require.Equal(t, map[string]session.CancelReason{run.ID: session.ReasonCancelled}, got)
			got, err = db.ClaimCancels(ctx, []string{run.ID})
			require.NoError(t, err)
			require.Empty(t, got, "claimed once")

			ids, err := db.RequestSessionCancels(ctx, []string{s1, s2}, "bob", session.ReasonSessionDeleted)
			require.NoError(t, err)
			require.Empty(t, ids, "bob's only run has finished; ann's are not his")
			ids, err = db.RequestSessionCancels(ctx, []string{s1, s2}, "", session.ReasonSessionDeleted)
			require.NoError(t, err)
			require.ElementsMatch(t, []string{run.ID, other.ID}, ids)
			got, err = db.ClaimCancels(ctx, []string{run.ID, other.ID})
			require.NoError(t, err)
			require.Equal(t, map[string]session.CancelReason{run.ID: session.ReasonSessionDeleted, other.ID: session.ReasonSessionDeleted}, got)

			run.Status = event.StatusCancelled
			require.NoError(t, db.FinishRun(ctx, run))
			running, err := db.Running(ctx, []string{run.ID, other.ID, done.ID})
			require.NoError(t, err)
			require.Equal(t, []string{other.ID}, running)
		})
	}
}
