package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
)

// TestFinishRunRewritesInput: a run whose input a guardrail redacted is
// stored with the redacted input, by every finishing path (with and without
// events); a run that did not rewrite it keeps the input recorded at start.
func TestFinishRunRewritesInput(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := t.Context()
			for _, tc := range []struct {
				name      string
				rewritten bool
				events    bool
				want      string
			}{
				{"kept", false, false, "mail jane@example.com"},
				{"rewritten", true, false, "mail [REDACTED:email]"},
				{"rewritten with events", true, true, "mail [REDACTED:email]"},
				{"kept with events", false, true, "mail jane@example.com"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := &store.Run{ID: session.NewID(), SessionID: session.NewID(), ComponentID: "writer", Type: store.SessionAgent,
						UserID: "u", Input: "mail jane@example.com", Status: event.StatusRunning}
					require.NoError(t, db.StartRun(ctx, &store.Session{ID: r.SessionID, Type: store.SessionAgent, ComponentID: "writer", UserID: "u"}, r))
					r.Status, r.Content = event.StatusCompleted, "ok"
					if tc.rewritten {
						r.Input, r.InputRewritten = "mail [REDACTED:email]", true
					}
					if tc.events {
						require.NoError(t, db.FinishRunWithEvents(ctx, r, []event.Event{{Type: event.RunCompleted, RunID: r.ID, Index: 0}}))
					} else {
						require.NoError(t, db.FinishRun(ctx, r))
					}
					got, err := db.GetRun(ctx, r.ID, session.Filter{})
					require.NoError(t, err)
					require.Equal(t, tc.want, got.Input)
					require.Equal(t, "ok", got.Content)
				})
			}
		})
	}
}
