package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/workflow"
	"github.com/troupehq/troupe/store"
)

// testWorkflowSteps stores a workflow run and its step checkpoints: written
// RUNNING then COMPLETED in place, listed in the order they started, outputs
// as JSON, concurrent branches all kept, and deleted with their run.
func testWorkflowSteps(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s := &store.Session{ID: "ws", Type: store.SessionWorkflow, ComponentID: "flow", UserID: "alice"}
	_, run := startRun(t, db, s, "wr", "go", at(0))
	require.Equal(t, store.SessionWorkflow, run.Type)
	require.NoError(t, db.StartRun(ctx, s, &store.Run{ID: "wr-a-1", ParentRunID: "wr", ComponentID: "writer", Type: store.SessionAgent, CreatedAt: at(1)}))

	save := func(c workflow.Checkpoint) {
		t.Helper()
		c.RunID = "wr"
		require.NoError(t, db.SaveStep(ctx, c))
	}
	save(workflow.Checkpoint{Path: "a", Status: event.StatusRunning, Attempts: 1, StartedAt: at(1), UpdatedAt: at(1)})
	save(workflow.Checkpoint{Path: "a", Status: event.StatusCompleted, Input: "in", Output: json.RawMessage(`{"k": [1, "x"]}`), Attempts: 1, StartedAt: at(1), UpdatedAt: at(2)})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			require.NoError(t, db.SaveStep(ctx, workflow.Checkpoint{RunID: "wr", Path: fmt.Sprintf("loop[%d]/b", i), Iteration: i, Status: event.StatusCompleted, Output: json.RawMessage(`"o"`), Attempts: 1, StartedAt: at(3), UpdatedAt: at(4)}))
		})
	}
	wg.Wait()
	save(workflow.Checkpoint{Path: "c", Status: event.StatusError, Error: "boom", Attempts: 2, StartedAt: at(5), UpdatedAt: at(6)})

	cps, err := db.Steps(ctx, "wr")
	require.NoError(t, err)
	require.Len(t, cps, 10)
	a := cps[0]
	require.Equal(t, "a", a.Path)
	require.Equal(t, event.StatusCompleted, a.Status)
	require.Equal(t, "in", a.Input)
	require.JSONEq(t, `{"k": [1, "x"]}`, string(a.Output))
	require.Equal(t, at(1), a.StartedAt)
	require.Equal(t, at(2), a.UpdatedAt)
	iters := map[int]bool{}
	for _, c := range cps[1:9] {
		iters[c.Iteration] = true
		require.Equal(t, fmt.Sprintf("loop[%d]/b", c.Iteration), c.Path)
		require.Equal(t, "b", c.Name())
	}
	require.Len(t, iters, 8)
	c := cps[9]
	require.Equal(t, "c", c.Path)
	require.Equal(t, event.StatusError, c.Status)
	require.Equal(t, "boom", c.Error)
	require.Equal(t, 2, c.Attempts)
	require.Nil(t, c.Output)

	none, err := db.Steps(ctx, "other")
	require.NoError(t, err)
	require.Empty(t, none)

	_, err = db.DeleteSessions(ctx, []string{"ws"}, store.Filter{})
	require.NoError(t, err)
	cps, err = db.Steps(ctx, "wr")
	require.NoError(t, err)
	require.Empty(t, cps, "checkpoints go with their run")
}
