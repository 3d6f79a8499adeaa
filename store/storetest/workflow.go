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
// as JSON, usage (cost to the nano-dollar) kept, concurrent branches all
// kept, and deleted with their run.
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
	usage := event.Metrics{InputTokens: 1200, OutputTokens: 34, TotalTokens: 1234, ModelRequests: 2, ToolCalls: 1, Cost: 4_123_457, CostUnknown: true}
	save(workflow.Checkpoint{Path: "a", Status: event.StatusCompleted, Input: "in", Output: json.RawMessage(`{"k": [1, "x"]}`), Attempts: 1, Metrics: usage, StartedAt: at(1), UpdatedAt: at(2)})
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
	require.Equal(t, usage, a.Metrics)
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
	require.Equal(t, event.Metrics{}, c.Metrics, "a step that recorded no usage has none")

	none, err := db.Steps(ctx, "other")
	require.NoError(t, err)
	require.Empty(t, none)

	_, err = db.DeleteSessions(ctx, []string{"ws"}, store.Filter{})
	require.NoError(t, err)
	cps, err = db.Steps(ctx, "wr")
	require.NoError(t, err)
	require.Empty(t, cps, "checkpoints go with their run")
}

// testWorkflowRecovery: a workflow run left RUNNING by a dead process is set
// back to PENDING (to resume from its checkpoints), not failed; the child
// run of its interrupted step is failed as any run; an abandoned job never
// fails a workflow run; the requeued run can be claimed again.
func testWorkflowRecovery(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s := &store.Session{ID: "ws", Type: store.SessionWorkflow, ComponentID: "flow", UserID: "u"}
	_, run := startRun(t, db, s, "wr", "go", at(0))
	require.NoError(t, db.StartRun(ctx, s, &store.Run{ID: "wr-s3-1", ParentRunID: "wr", ComponentID: "writer", Type: store.SessionAgent, CreatedAt: at(1)}))
	require.NoError(t, db.SaveStep(ctx, workflow.Checkpoint{RunID: "wr", Path: "s1", Status: event.StatusCompleted, Output: json.RawMessage(`"one"`), Attempts: 1, StartedAt: at(0), UpdatedAt: at(1)}))
	failed, err := db.FailRunning(ctx, "wr", "abandoned")
	require.NoError(t, err)
	require.False(t, failed, "a workflow run's abandoned job leaves it to recovery")
	require.NoError(t, db.Close(), "the process dies during the run")

	db = open(t)
	got, err := db.GetRun(ctx, "wr", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, event.StatusPending, got.Status)
	require.Empty(t, got.Error)
	require.Equal(t, run.CreatedAt, got.CreatedAt)
	child, err := db.GetRun(ctx, "wr-s3-1", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, event.StatusError, child.Status)
	statuses := map[string]event.Status{}
	for _, r := range db.Interrupted() {
		statuses[r.ID] = r.Status
	}
	require.Equal(t, map[string]event.Status{"wr": event.StatusPending, "wr-s3-1": event.StatusError}, statuses)
	claimed, err := db.ClaimRun(ctx, "wr")
	require.NoError(t, err)
	require.Equal(t, event.StatusRunning, claimed.Status)
	cps, err := db.Steps(ctx, "wr")
	require.NoError(t, err)
	require.Len(t, cps, 1, "checkpoints survive the crash")
}
