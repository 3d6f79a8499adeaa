package main

import (
	"encoding/json"
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

// TestPausedTeamRunSurvivesKill pauses a team run on its member's held call
// on replica A, kills A with SIGKILL, and decides the call in replica B's
// inbox: B's job engine continues the team and its member from the held
// state, the call runs once, and the team run completes with the member
// stored once, completed.
func TestPausedTeamRunSurvivesKill(t *testing.T) {
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
	team := "---\nkind: Team\nname: desk\ndescription: Routes refunds to the clerk.\nmode: route\nmodel: echo\nmembers: [clerk]\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), fmt.Appendf(nil, approvalCrashSpecs+team, up.URL), 0o644))
	a, _ := startReplica(t, replicaConfig{name: "a", db: dsn, dir: dir})
	b, _ := startReplica(t, replicaConfig{name: "b", db: dsn, dir: dir})

	var run runState
	// The echo leader routes as told: the clerk's task is the refund call.
	route, _ := json.Marshal(map[string]string{"member": "clerk", "task": `/call refund {"order":"T1"}`})
	msg, _ := json.Marshal(map[string]any{"message": "/call route_to_member " + string(route), "stream": false})
	status, _ := a.do(t, http.MethodPost, "/teams/desk/runs", "application/json", string(msg), &run)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "PAUSED", run.Status, run.Error)
	id := run.RunID
	a.kill(t)

	b.get(t, "/teams/desk/runs/"+id, &run)
	require.Equal(t, "PAUSED", run.Status, "the paused team run outlives the process that paused it")
	var inbox struct {
		Data []struct {
			ID     string `json:"id"`
			TeamID string `json:"team_id"`
			RunID  string `json:"run_id"`
		} `json:"data"`
	}
	b.get(t, "/approvals?status=pending&team_id=desk", &inbox)
	require.Len(t, inbox.Data, 1)
	require.Equal(t, id, inbox.Data[0].RunID)
	require.Zero(t, refunds.Load(), "nothing ran before the decision")

	status, _ = b.do(t, http.MethodPost, "/approvals/"+inbox.Data[0].ID+"/resolve", "application/json", `{"approved":true,"comment":"go"}`, nil)
	require.Equal(t, http.StatusOK, status)
	require.Eventually(t, func() bool {
		b.get(t, "/teams/desk/runs/"+id, &run)
		return run.Status == "COMPLETED" || run.Status == "ERROR"
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	require.Contains(t, run.Content, `refunded {"order":"T1"}`)
	status, _ = b.do(t, http.MethodPost, "/approvals/"+inbox.Data[0].ID+"/resolve", "application/json", `{"approved":false}`, nil)
	require.Equal(t, http.StatusConflict, status, "a second decision")

	var runs []struct {
		ParentRunID string `json:"parent_run_id"`
		AgentID     string `json:"agent_id"`
		Status      string `json:"status"`
	}
	b.get(t, "/sessions/"+run.SessionID+"/runs", &runs)
	var members []string
	for _, r := range runs {
		if r.ParentRunID == id {
			members = append(members, r.AgentID+" "+r.Status)
		}
	}
	require.Equal(t, []string{"clerk COMPLETED"}, members)
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, int32(1), refunds.Load(), "the call ran once")
}
