package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// testRunEvents: a run's events are read back after an index, in order,
// with their index, across and inside batches; writing a batch again
// replaces it; a missing run refuses events; the last batch goes in with
// the run's final state; events go with their session.
func testRunEvents(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s, r := startRun(t, db, agentSession("ev", "alice", "helper"), "run-ev", "hi", base)
	var evs []event.Event
	for i := range 150 {
		evs = append(evs, event.Event{Index: i, Type: event.RunContent, RunID: r.ID, SessionID: s.ID, AgentID: "helper",
			Content: fmt.Sprintf("delta %d", i), CreatedAt: base})
	}
	require.NoError(t, db.AppendEvents(ctx, r.ID, evs[:100]))
	require.NoError(t, db.AppendEvents(ctx, r.ID, evs[100:]))

	tests := []struct {
		name         string
		after, limit int
		want         []event.Event
	}{
		{"from the start", -1, 0, evs},
		{"after an index", 97, 0, evs[98:]},
		{"limited", 10, 5, evs[11:16]},
		{"after the last", 149, 0, nil},
	}
	for _, tt := range tests {
		got, err := db.EventsAfter(ctx, r.ID, tt.after, tt.limit)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, got, tt.name)
	}

	terminal := event.Event{Index: 149, Type: event.RunError, RunID: r.ID, Content: "could not be saved", CreatedAt: base}
	rewritten := append(slices.Clone(evs[100:149]), terminal)
	require.NoError(t, db.AppendEvents(ctx, r.ID, rewritten), "a batch written again replaces the first")
	got, err := db.EventsAfter(ctx, r.ID, 148, 0)
	require.NoError(t, err)
	require.Equal(t, []event.Event{terminal}, got)

	require.Error(t, db.AppendEvents(ctx, "no-such-run", evs[:1]), "events belong to a stored run")
	other, err := db.EventsAfter(ctx, "no-such-run", -1, 0)
	require.NoError(t, err)
	require.Empty(t, other)

	// The last events go in with the run's final state.
	last := []event.Event{
		{Index: 150, Type: event.RunContent, RunID: r.ID, Content: "last delta", CreatedAt: base},
		{Index: 151, Type: event.RunCompleted, RunID: r.ID, Content: "answer", CreatedAt: base},
	}
	r.Status, r.Content = event.StatusCompleted, "answer"
	require.NoError(t, db.FinishRunWithEvents(ctx, r, last))
	got, err = db.EventsAfter(ctx, r.ID, 149, 0)
	require.NoError(t, err)
	require.Equal(t, last, got)
	stored, err := db.GetRun(ctx, r.ID, store.Filter{})
	require.NoError(t, err)
	require.Equal(t, event.StatusCompleted, stored.Status)
	gone := &store.Run{ID: "no-such-run", Status: event.StatusCompleted}
	require.ErrorIs(t, db.FinishRunWithEvents(ctx, gone, last), store.ErrNotFound, "nothing is written for a missing run")

	_, err = db.DeleteSessions(ctx, []string{s.ID}, store.Filter{})
	require.NoError(t, err)
	got, err = db.EventsAfter(ctx, r.ID, -1, 0)
	require.NoError(t, err)
	require.Empty(t, got, "events go with their session")
}

// testStreamRequests: a stream request is recorded for a RUNNING top-level
// run only, and claimed once, by the ids of the runs a replica executes.
func testStreamRequests(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	_, running := startRun(t, db, agentSession("st", "alice", "helper"), "run-st", "hi", base)
	_, done := startRun(t, db, agentSession("st-done", "alice", "helper"), "run-st-done", "hi", base)
	done.Status, done.Content = event.StatusCompleted, "answer"
	require.NoError(t, db.FinishRun(ctx, done))

	tests := []struct {
		name  string
		runID string
		want  bool
	}{
		{"running", running.ID, true},
		{"asked again", running.ID, true},
		{"finished", done.ID, false},
		{"unknown", "no-such-run", false},
	}
	for _, tt := range tests {
		ok, err := db.RequestStream(ctx, tt.runID)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, ok, tt.name)
	}

	none, err := db.ClaimStreams(ctx, []string{"other-run"})
	require.NoError(t, err)
	require.Empty(t, none, "only the runs asked about are claimed")
	claimed, err := db.ClaimStreams(ctx, []string{"other-run", running.ID, done.ID})
	require.NoError(t, err)
	require.Equal(t, []string{running.ID}, claimed)
	again, err := db.ClaimStreams(ctx, []string{running.ID})
	require.NoError(t, err)
	require.Empty(t, again, "a request is claimed once")
}
