package console_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wfApprovalSpecs add approval steps with a timeout and named approvers to
// the workflow specs.
const wfApprovalSpecs = runWorkflowSpecs + `---
kind: Workflow
name: timed
steps:
  - {name: draft, agent: writer, input: "draft {{ message }}"}
  - name: ok
    approval: {message: "Ship {{ message }}?", timeout: 1s, default: approve}
  - {name: publish, agent: writer, input: "publish {{ steps.ok.output.comment }}"}
---
kind: Workflow
name: alices
steps:
  - name: ok
    approval: {message: "Alice decides", approvers: {users: [alice]}}
`

// wfApproval is an inbox record of a workflow's approval step.
type wfApproval struct {
	approvalRecord
	TargetKind string `json:"target_kind"`
	WorkflowID string `json:"workflow_id"`
	ToolCallID string `json:"tool_call_id"`
	Approvers  struct {
		Users  []string `json:"users"`
		Scopes []string `json:"scopes"`
	} `json:"approvers"`
}

// startPaused runs workflow wf to its approval step and returns the run id.
func startPaused(t *testing.T, ts *testServer, wf, msg string) string {
	t.Helper()
	frames, hdr := ts.stream("/workflows/"+wf+"/runs", "", "application/json", `{"message": "`+msg+`"}`)
	require.Equal(t, "WorkflowPaused", own(frames)[len(own(frames))-1])
	return hdr.Get("X-Run-Id")
}

func waitWorkflow(t *testing.T, ts *testServer, wf, id string) wfRun {
	t.Helper()
	var run wfRun
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/workflows/"+wf+"/runs/"+id, "", "", http.StatusOK, &run)
		return run.Status != "PENDING" && run.Status != "RUNNING" && run.Status != "PAUSED"
	}, 30*time.Second, 20*time.Millisecond, "the run never ended (last: %+v)", run)
	return run
}

// stepApproval returns the inbox record of run id's approval step.
func stepApproval(t *testing.T, ts *testServer, wf, id string) wfApproval {
	t.Helper()
	var list struct{ Data []wfApproval }
	ts.json(http.MethodGet, "/approvals?workflow_id="+wf, "", "", http.StatusOK, &list)
	for _, r := range list.Data {
		if r.RunID == id {
			return r
		}
	}
	t.Fatalf("run %s has no approval in the inbox (%+v)", id, list.Data)
	return wfApproval{}
}

// TestWorkflowApprovalInbox: a workflow paused at an approval step is a
// pending record of the inbox; deciding it in the inbox or through the
// workflow's continue route continues the run the same way, and the other
// route then answers 409.
func TestWorkflowApprovalInbox(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(wfApprovalSpecs))
	const v = "system=Write.|user=%s|history=0"
	tests := []struct {
		name     string
		approved bool
		first    func(id, recID string) (int, string)
		second   func(id, recID string) (int, string)
		status   string
		decider  string
	}{
		{
			name: "resolved in the inbox", approved: true,
			first: func(_, recID string) (int, string) {
				c, b, _ := ts.do(http.MethodPost, "/approvals/"+recID+"/resolve", "", "application/json", `{"approved": true, "comment": "ship it"}`)
				return c, b
			},
			second: func(id, _ string) (int, string) {
				c, b, _ := ts.do(http.MethodPost, "/workflows/review/runs/"+id+"/continue", "", "application/json", `{"approved": false}`)
				return c, b
			},
			status: "COMPLETED",
		},
		{
			name: "rejected in the inbox",
			first: func(_, recID string) (int, string) {
				c, b, _ := ts.do(http.MethodPost, "/approvals/"+recID+"/resolve", "", "application/json", `{"approved": false, "comment": "ship it"}`)
				return c, b
			},
			second: func(_, recID string) (int, string) {
				c, b, _ := ts.do(http.MethodPost, "/approvals/"+recID+"/resolve", "", "application/json", `{"approved": true}`)
				return c, b
			},
			status: "CANCELLED",
		},
		{
			name: "continued through the workflow route", approved: true,
			first: func(id, _ string) (int, string) {
				c, b, _ := ts.do(http.MethodPost, "/workflows/review/runs/"+id+"/continue", "", "application/json", `{"approved": true, "comment": "ship it"}`)
				return c, b
			},
			second: func(_, recID string) (int, string) {
				c, b, _ := ts.do(http.MethodPost, "/approvals/"+recID+"/resolve", "", "application/json", `{"approved": false}`)
				return c, b
			},
			status: "COMPLETED",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := fmt.Sprintf("m%d", i)
			id := startPaused(t, ts, "review", msg)
			rec := stepApproval(t, ts, "review", id)
			require.Equal(t, "pending", rec.Status)
			require.Equal(t, "workflow", rec.TargetKind)
			require.Equal(t, "review", rec.WorkflowID)
			require.Empty(t, rec.AgentID)
			require.Equal(t, "ok", rec.Tool, "the step's path is the tool")
			require.Equal(t, "ok", rec.ToolCallID)
			require.Equal(t, "Publish "+fmt.Sprintf(v, "draft "+msg)+"?", rec.Reason)
			require.Equal(t, "reject", rec.Default)
			require.Equal(t, []string{"approvals:write"}, rec.Approvers.Scopes, "the default approvers")

			code, body := tt.first(id, rec.ID)
			require.Less(t, code, 300, body)
			run := waitWorkflow(t, ts, "review", id)
			require.Equal(t, tt.status, run.Status, run.Error)
			if tt.approved {
				require.Equal(t, fmt.Sprintf(v, "publish ship it"), run.Content)
				require.JSONEq(t, `{"approved": true, "comment": "ship it"}`, string(run.Steps[1].Output))
			} else {
				require.Contains(t, run.Error, "rejected by the reviewer: ship it")
				require.Len(t, run.Steps, 2, "publish never ran")
			}
			var got wfApproval
			ts.json(http.MethodGet, "/approvals/"+rec.ID, "", "", http.StatusOK, &got)
			want := map[bool]string{true: "approved", false: "rejected"}[tt.approved]
			require.Equal(t, want, got.Status, "the inbox shows the decision, whichever route took it")
			require.Equal(t, "anonymous", got.DecidedBy)
			require.Equal(t, "ship it", got.Comment)

			code, body = tt.second(id, rec.ID)
			require.Equal(t, http.StatusConflict, code, body)
			require.Equal(t, tt.status, waitWorkflow(t, ts, "review", id).Status, "the second decision changed nothing")
		})
	}
	var count struct{ Count int }
	ts.json(http.MethodGet, "/approvals/count?workflow_id=review", "", "", http.StatusOK, &count)
	require.Zero(t, count.Count, "no decided step is pending")
}

// TestWorkflowApprovalTimeout: an approval step's timeout applies its default
// decision through the approval_timeout job, and the workflow goes on.
func TestWorkflowApprovalTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(wfApprovalSpecs))
	id := startPaused(t, ts, "timed", "x")
	rec := stepApproval(t, ts, "timed", id)
	require.Equal(t, "approve", rec.Default)
	run := waitWorkflow(t, ts, "timed", id)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	var out struct {
		Approved bool
		Comment  string
	}
	ts.json(http.MethodGet, "/approvals/"+rec.ID, "", "", http.StatusOK, &rec)
	require.Equal(t, "expired", rec.Status)
	require.Equal(t, "timeout", rec.DecidedBy)
	require.NoError(t, json.Unmarshal(run.Steps[1].Output, &out))
	require.True(t, out.Approved)
	require.Contains(t, out.Comment, "the default (approve) applied")
}

// TestWorkflowApprovalApprovers: a step's approvers decide who sees and
// decides its record, in the inbox and through the workflow's continue
// route alike.
func TestWorkflowApprovalApprovers(t *testing.T) {
	t.Parallel()
	const (
		admin  = "sk-admin-0123456789abcdef"
		alice  = "sk-alice-0123456789abcdef"
		bob    = "sk-bob-00123456789abcdef"
		runner = "sk-run-00123456789abcdef"
	)
	ts := startServer(t, withSpecs(wfApprovalSpecs), withKeys(admin+"=admin,"+alice+"=approvals:write@alice,"+bob+"=approvals:write@bob,"+runner+"=agents:run+sessions:read"))
	frames, hdr := ts.stream("/workflows/alices/runs", admin, "application/json", `{"message": "go"}`)
	require.Equal(t, "WorkflowPaused", own(frames)[len(own(frames))-1])
	id := hdr.Get("X-Run-Id")

	var list struct{ Data []wfApproval }
	ts.json(http.MethodGet, "/approvals?workflow_id=alices", bob, "", http.StatusOK, &list)
	require.Empty(t, list.Data, "bob is no approver")
	ts.json(http.MethodGet, "/approvals?workflow_id=alices", alice, "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	rec := list.Data[0]
	require.Equal(t, []string{"alice"}, rec.Approvers.Users)
	require.Empty(t, rec.Approvers.Scopes, "named approvers replace the default scope")
	require.Equal(t, "Alice decides", rec.Reason)

	status, body, _ := ts.do(http.MethodPost, "/approvals/"+rec.ID+"/resolve", bob, "application/json", `{"approved": true}`)
	require.Equal(t, http.StatusNotFound, status, body)
	status, body, _ = ts.do(http.MethodPost, "/workflows/alices/runs/"+id+"/continue", runner, "application/json", `{"approved": true}`)
	require.Equal(t, http.StatusForbidden, status, "a key that may run workflows but is no approver: %s", body)
	var run wfRun
	ts.json(http.MethodGet, "/workflows/alices/runs/"+id, admin, "", http.StatusOK, &run)
	require.Equal(t, "PAUSED", run.Status, "the refused decision changed nothing")

	ts.json(http.MethodPost, "/approvals/"+rec.ID+"/resolve", alice, `{"approved": true, "comment": "fine"}`, http.StatusOK, &rec)
	require.Equal(t, "alice", rec.DecidedBy)
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/workflows/alices/runs/"+id, admin, "", http.StatusOK, &run)
		return run.Status == "COMPLETED"
	}, 15*time.Second, 20*time.Millisecond, "last: %+v", run)
	require.JSONEq(t, `{"approved": true, "comment": "fine"}`, string(run.Steps[0].Output))
}

// TestWorkflowApprovalWebhook: the webhook announces an approval step as it
// announces a tool call, with the workflow as its target.
func TestWorkflowApprovalWebhook(t *testing.T) {
	t.Parallel()
	got := make(chan []byte, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	t.Cleanup(hook.Close)
	ts := startServer(t, withSpecs(wfApprovalSpecs), withApprovalWebhook(hook.URL, "whsec-0123456789"))
	id := startPaused(t, ts, "review", "hooked")
	var body []byte
	select {
	case body = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the webhook was not delivered")
	}
	var ann struct {
		Event    string `json:"event"`
		Approval struct {
			ID         string `json:"id"`
			RunID      string `json:"run_id"`
			TargetKind string `json:"target_kind"`
			TargetName string `json:"target_name"`
			Tool       string `json:"tool_name"`
		} `json:"approval"`
	}
	require.NoError(t, json.Unmarshal(body, &ann))
	require.Equal(t, "approval.created", ann.Event)
	require.Equal(t, id, ann.Approval.RunID)
	require.Equal(t, "workflow", ann.Approval.TargetKind)
	require.Equal(t, "review", ann.Approval.TargetName)
	require.Equal(t, "ok", ann.Approval.Tool)
	require.Equal(t, stepApproval(t, ts, "review", id).ID, ann.Approval.ID)
}
