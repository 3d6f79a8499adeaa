package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	enginesession "github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
)

// testSummary covers session summaries: the unfolded history after a fold
// point, a save that never moves the point back, the summary on the
// session's reads, and an edit limited to the session's user.
func testSummary(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s := agentSession("s", "alice", "a")
	var stored []*store.Run
	for i, id := range []string{"r1", "r2", "r3", "r4"} {
		sc := *s
		r := &store.Run{ID: id, Input: "q" + id, CreatedAt: at(i)}
		require.NoError(t, db.StartRun(ctx, &sc, r))
		finishRun(t, db, r, event.StatusCompleted, at(i))
		stored = append(stored, r)
	}
	// Two runs created in the same microsecond are ordered by id.
	sc := *s
	tie := &store.Run{ID: "r5", Input: "qr5", CreatedAt: at(3)}
	require.NoError(t, db.StartRun(ctx, &sc, tie))
	finishRun(t, db, tie, event.StatusCompleted, at(3))

	sum, err := db.SessionSummary(ctx, "s")
	require.NoError(t, err)
	require.Nil(t, sum)
	_, err = db.SessionSummary(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)

	point := func(r *store.Run) store.FoldPoint {
		return store.FoldPoint{RunID: r.ID, CreatedAt: r.CreatedAt}
	}
	ids := func(runs []store.HistoryRun) []string {
		var out []string
		for _, r := range runs {
			out = append(out, r.RunID)
		}
		return out
	}
	tests := []struct {
		name  string
		after store.FoldPoint
		n     int
		want  []string
	}{
		{"nothing folded", store.FoldPoint{}, 10, []string{"r1", "r2", "r3", "r4", "r5"}},
		{"newest two", store.FoldPoint{}, 2, []string{"r4", "r5"}},
		{"after r2", point(stored[1]), 10, []string{"r3", "r4", "r5"}},
		{"after r4, tie on time", point(stored[3]), 10, []string{"r5"}},
		{"after the last", point(tie), 10, nil},
		{"zero", store.FoldPoint{}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.HistoryAfter(ctx, "s", tc.after, tc.n)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(got))
		})
	}
	// The unfolded size: how many runs and their stored token estimates
	// (each run here is "q<id>" and "answer to q<id>").
	each := enginesession.EstimateTokens([]model.Message{{Role: model.RoleUser, Content: "qr1"}, {Role: model.RoleAssistant, Content: "answer to qr1"}})
	for _, tc := range []struct {
		name  string
		after store.FoldPoint
		runs  int
	}{
		{"nothing folded", store.FoldPoint{}, 5},
		{"after r2", point(stored[1]), 3},
		{"after r4, tie on time", point(stored[3]), 1},
		{"after the last", point(tie), 0},
	} {
		n, tokens, err := db.UnfoldedSize(ctx, "s", tc.after)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.runs, n, tc.name)
		require.Equal(t, tc.runs*each, tokens, tc.name)
	}

	runs, err := db.HistoryAfter(ctx, "s", point(stored[2]), 10)
	require.NoError(t, err)
	require.Equal(t, []model.Message{{Role: model.RoleUser, Content: "qr4"}, {Role: model.RoleAssistant, Content: "answer to qr4"}}, runs[0].Messages)
	require.Equal(t, at(3), runs[0].CreatedAt)

	// Saving through r3, then an older point (a late job) changes nothing.
	first := &store.Summary{Summary: "alice asked about r1 to r3", Topics: []string{"runs"}, UpdatedAt: at(10), Through: point(stored[2])}
	saved, err := db.SaveSummary(ctx, "s", first)
	require.NoError(t, err)
	require.True(t, saved)
	saved, err = db.SaveSummary(ctx, "s", &store.Summary{Summary: "older", UpdatedAt: at(11), Through: point(stored[1])})
	require.NoError(t, err)
	require.False(t, saved)
	saved, err = db.SaveSummary(ctx, "s", &store.Summary{Summary: "same point again", UpdatedAt: at(11), Through: point(stored[2])})
	require.NoError(t, err)
	require.False(t, saved)
	_, err = db.SaveSummary(ctx, "nope", first)
	require.ErrorIs(t, err, store.ErrNotFound)

	sum, err = db.SessionSummary(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, first, sum)
	got, err := db.GetSession(ctx, "s", store.Filter{UserID: "alice"})
	require.NoError(t, err)
	require.Equal(t, first, got.Summary)
	list, _, err := db.ListSessions(ctx, store.SessionQuery{Filter: store.Filter{UserID: "alice"}})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, first, list[0].Summary)

	// An edit keeps the point; another user's edit finds nothing.
	_, err = db.EditSummary(ctx, "s", "hijacked", nil, store.Filter{UserID: "bob"})
	require.ErrorIs(t, err, store.ErrNotFound)
	edited, err := db.EditSummary(ctx, "s", "  corrected  ", []string{" a ", "", "b"}, store.Filter{UserID: "alice"})
	require.NoError(t, err)
	require.Equal(t, "  corrected  ", edited.Summary.Summary)
	require.Equal(t, []string{"a", "b"}, edited.Summary.Topics)
	require.Equal(t, first.Through, edited.Summary.Through)
	require.False(t, edited.Summary.UpdatedAt.IsZero())

	// A later point replaces the edit.
	later := &store.Summary{Summary: "through r4", UpdatedAt: at(12), Through: point(stored[3])}
	saved, err = db.SaveSummary(ctx, "s", later)
	require.NoError(t, err)
	require.True(t, saved)
	sum, err = db.SessionSummary(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, later, sum)
}
