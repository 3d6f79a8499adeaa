package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// approvalCrashSpecs is an agent on the offline echo model whose refund tool
// needs approval; the tool posts to the test's loopback upstream.
const approvalCrashSpecs = `kind: Tool
name: refund
description: Refunds an order.
type: http
method: POST
url: %s/refund
parameters: {type: object, properties: {order: {type: string}}}
allowed_hosts: [127.0.0.1]
approval: required
---
kind: Agent
name: clerk
description: Refunds orders.
model: echo
tools: [refund]
`

// TestPausedRunSurvivesKill pauses a run on replica A (two replicas on one
// PostgreSQL database), kills A with SIGKILL, and continues the run through
// replica B: the held call runs once, there, and the run completes.
func TestPausedRunSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	dsn, _ := pgDatabase(t)
	var refunds atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		refunds.Add(1)
		fmt.Fprintf(w, "refunded %s", b)
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), fmt.Appendf(nil, approvalCrashSpecs, up.URL), 0o644))
	a, _ := startReplica(t, replicaConfig{name: "a", db: dsn, dir: dir})
	b, _ := startReplica(t, replicaConfig{name: "b", db: dsn, dir: dir})

	var run runState
	status, _ := a.do(t, http.MethodPost, "/agents/clerk/runs", "application/json", `{"message":"/call refund {\"order\":\"A1\"}","stream":false}`, &run)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "PAUSED", run.Status)
	id := run.RunID
	a.kill(t)

	b.get(t, "/agents/clerk/runs/"+id, &run)
	require.Equal(t, "PAUSED", run.Status, "the paused run outlives the process that paused it")
	var inbox struct {
		Data []struct {
			ID         string `json:"id"`
			ToolCallID string `json:"tool_call_id"`
			Status     string `json:"status"`
		} `json:"data"`
	}
	b.get(t, "/approvals?status=pending", &inbox)
	require.Len(t, inbox.Data, 1)
	require.Zero(t, refunds.Load(), "nothing ran before the decision")

	body := fmt.Sprintf(`{"tools":[{"tool_call_id":%q,"confirmed":true}],"stream":false}`, inbox.Data[0].ToolCallID)
	status, _ = b.do(t, http.MethodPost, "/agents/clerk/runs/"+id+"/continue", "application/json", body, &run)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	require.True(t, strings.Contains(run.Content, `refunded {"order":"A1"}`), run.Content)
	require.Equal(t, int32(1), refunds.Load())

	status, _ = b.do(t, http.MethodPost, "/agents/clerk/runs/"+id+"/continue", "application/json", body, nil)
	require.Equal(t, http.StatusConflict, status, "a completed run cannot be continued")
	var rec struct {
		Status    string `json:"status"`
		DecidedBy string `json:"decided_by"`
	}
	b.get(t, "/approvals/"+inbox.Data[0].ID, &rec)
	require.Equal(t, "approved", rec.Status)
	require.Equal(t, "anonymous", rec.DecidedBy)
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, int32(1), refunds.Load(), "the call ran once")
}
