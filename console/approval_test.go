package console_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// approvalSpecs are tools with each control point, on an upstream recorder.
const approvalSpecs = `kind: Model
name: scripted
provider: anthropic
model: scripted
api_key: sk-test
---
kind: Tool
name: refund
description: Refunds an order.
type: http
method: POST
url: %[1]s/refund
parameters: {type: object, properties: {order: {type: string}, amount: {type: number}}, required: [order, amount]}
allowed_hosts: [127.0.0.1]
approval:
  when: 'args.amount > 100'
  reason: 'Refund of {{ args.amount }} for {{ args.order }}'
  approvers: {users: [alice]}
  timeout: %[2]s
  default: approve
---
kind: Tool
name: pick_file
description: Lets the user pick a file.
type: external
parameters: {type: object, properties: {path: {type: string}}}
---
kind: Tool
name: send_email
description: Sends an email.
type: http
method: POST
url: %[1]s/email
parameters: {type: object, properties: {to: {type: string}, subject: {type: string}}}
user_input: [to]
allowed_hosts: [127.0.0.1]
---
kind: Agent
name: clerk
description: Refunds orders.
model: scripted
tools: [refund, pick_file, send_email]
`

// upstream records the bodies the tools sent.
type upstream struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func (u *upstream) got() []map[string]any {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]map[string]any(nil), u.bodies...)
}

func startApprovals(t *testing.T, timeout string, call model.ToolCall, opts ...serverOption) (*testServer, *fake.Provider, *upstream) {
	t.Helper()
	up := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		m["_path"] = r.URL.Path
		up.mu.Lock()
		up.bodies = append(up.bodies, m)
		up.mu.Unlock()
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	script := fake.New(fake.Step{ToolCalls: []model.ToolCall{call}})
	script.Repeat = &fake.Step{Content: "done"}
	opts = append([]serverOption{withProvider("anthropic", script), withSpecs(fmt.Sprintf(approvalSpecs, srv.URL, timeout))}, opts...)
	return startServer(t, opts...), script, up
}

// pausedRun is a RunPaused frame's data.
type pausedTool struct {
	ToolCallID                string           `json:"tool_call_id"`
	ToolName                  string           `json:"tool_name"`
	ToolArgs                  map[string]any   `json:"tool_args"`
	RequiresConfirmation      bool             `json:"requires_confirmation"`
	RequiresUserInput         bool             `json:"requires_user_input"`
	UserInputSchema           []map[string]any `json:"user_input_schema"`
	ExternalExecutionRequired bool             `json:"external_execution_required"`
	ApprovalID                string           `json:"approval_id"`
	Reason                    string           `json:"reason"`
}

// pause starts a run of clerk and returns its run id and the held calls.
func pause(t *testing.T, ts *testServer) (string, []pausedTool) {
	t.Helper()
	frames, h := ts.stream("/agents/clerk/runs", "", "application/json", `{"message":"refund order A1"}`)
	last := frames[len(frames)-1]
	require.Equal(t, "RunPaused", last.Event, names(frames))
	b, err := json.Marshal(last.Data["tools"])
	require.NoError(t, err)
	var tools []pausedTool
	require.NoError(t, json.Unmarshal(b, &tools))
	runID := h.Get("X-Run-Id")
	require.Equal(t, "PAUSED", waitRun(t, ts, "/agents/clerk/runs/"+runID, "PAUSED").Status)
	return runID, tools
}

// toolMessage returns the content of the last tool result the model read.
func toolMessage(t *testing.T, p *fake.Provider) string {
	t.Helper()
	reqs := p.Requests()
	require.NotEmpty(t, reqs)
	msgs := reqs[len(reqs)-1].Messages
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == model.RoleTool {
			return msgs[i].Content
		}
	}
	t.Fatalf("the model read no tool result")
	return ""
}

type approvalRecord struct {
	ID        string         `json:"id"`
	RunID     string         `json:"run_id"`
	Status    string         `json:"status"`
	Tool      string         `json:"tool_name"`
	Args      map[string]any `json:"tool_args"`
	Reason    string         `json:"reason"`
	DecidedBy string         `json:"decided_by"`
	Comment   string         `json:"comment"`
	Default   string         `json:"default_decision"`
	AgentID   string         `json:"agent_id"`
}

var refundCall = model.ToolCall{ID: "call-1", Name: "refund", Arguments: `{"order":"A1","amount":500}`}

// TestApprovalContinue pauses a run on each kind of held call and continues
// it through POST …/continue with each kind of decision.
func TestApprovalContinue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		call     model.ToolCall
		decision string // the tools item, %s is the call id
		check    func(t *testing.T, held pausedTool, p *fake.Provider, up *upstream)
	}{
		{name: "confirmed", call: refundCall, decision: `{"tool_call_id":"%s","confirmed":true}`,
			check: func(t *testing.T, held pausedTool, p *fake.Provider, up *upstream) {
				require.True(t, held.RequiresConfirmation)
				require.NotEmpty(t, held.ApprovalID)
				require.Equal(t, "Refund of 500 for A1", held.Reason)
				require.Len(t, up.got(), 1)
				require.Equal(t, 500.0, up.got()[0]["amount"])
				require.Equal(t, `{"ok":true}`, toolMessage(t, p))
			}},
		{name: "rejected", call: refundCall, decision: `{"tool_call_id":"%s","confirmed":false,"confirmation_note":"too much"}`,
			check: func(t *testing.T, _ pausedTool, p *fake.Provider, up *upstream) {
				require.Empty(t, up.got(), "a rejected call never runs")
				msg := toolMessage(t, p)
				require.Contains(t, msg, "rejected")
				require.Contains(t, msg, "too much")
			}},
		{name: "edited args", call: refundCall, decision: `{"tool_call_id":"%s","confirmed":true,"tool_args":{"order":"A1","amount":150}}`,
			check: func(t *testing.T, _ pausedTool, _ *fake.Provider, up *upstream) {
				require.Len(t, up.got(), 1)
				require.Equal(t, 150.0, up.got()[0]["amount"])
			}},
		{name: "external", call: model.ToolCall{ID: "call-1", Name: "pick_file", Arguments: `{}`}, decision: `{"tool_call_id":"%s","result":"/home/a/report.pdf"}`,
			check: func(t *testing.T, held pausedTool, p *fake.Provider, up *upstream) {
				require.True(t, held.ExternalExecutionRequired)
				require.False(t, held.RequiresConfirmation)
				require.Equal(t, "/home/a/report.pdf", toolMessage(t, p))
				require.Empty(t, up.got())
			}},
		{name: "user input", call: model.ToolCall{ID: "call-1", Name: "send_email", Arguments: `{"subject":"hi"}`},
			decision: `{"tool_call_id":"%s","user_input_schema":[{"name":"to","value":"bob@example.com"}]}`,
			check: func(t *testing.T, held pausedTool, p *fake.Provider, up *upstream) {
				require.True(t, held.RequiresUserInput)
				require.Equal(t, "to", held.UserInputSchema[0]["name"])
				require.Equal(t, "str", held.UserInputSchema[0]["field_type"])
				require.Len(t, up.got(), 1)
				require.Equal(t, "bob@example.com", up.got()[0]["to"])
				require.Equal(t, "hi", up.got()[0]["subject"])
				// The model is not offered what the user fills in.
				var offered map[string]any
				for _, d := range p.Requests()[0].Tools {
					if d.Name == "send_email" {
						offered = d.Parameters["properties"].(map[string]any)
					}
				}
				require.Contains(t, offered, "subject")
				require.NotContains(t, offered, "to")
			}},
	}
	for _, tt := range tests {
		for _, stream := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s stream=%v", tt.name, stream), func(t *testing.T) {
				t.Parallel()
				ts, p, up := startApprovals(t, "1h", tt.call)
				runID, held := pause(t, ts)
				require.Len(t, held, 1)
				require.Equal(t, "call-1", held[0].ToolCallID)
				require.Empty(t, up.got(), "a held call does not run before its decision")

				path := "/agents/clerk/runs/" + runID + "/continue"
				// Nothing decided: 422 naming the call.
				status, body, _ := ts.do(http.MethodPost, path, "", "application/json", `{"tools":[]}`)
				require.Equal(t, http.StatusUnprocessableEntity, status, body)
				require.Contains(t, body, "call-1")
				// A decision for a call the run does not hold: 422 naming
				// it, and nothing is decided (the held call's decision
				// sent with it included).
				bad := fmt.Sprintf(`{"tools":[%s,{"tool_call_id":"call-9","confirmed":true}],"stream":false}`, fmt.Sprintf(tt.decision, "call-1"))
				status, body, _ = ts.do(http.MethodPost, path, "", "application/json", bad)
				require.Equal(t, http.StatusUnprocessableEntity, status, body)
				require.Contains(t, body, `tool_call_id \"call-9\" is not held`)
				require.Equal(t, "PAUSED", waitRun(t, ts, "/agents/clerk/runs/"+runID, "PAUSED").Status)
				require.Empty(t, up.got())

				req := fmt.Sprintf(`{"tools":[%s],"stream":%v}`, fmt.Sprintf(tt.decision, "call-1"), stream)
				if stream {
					frames, _ := ts.stream(path, "", "application/json", req)
					require.Equal(t, "RunContinued", frames[0].Event, names(frames))
					require.Equal(t, "RunCompleted", frames[len(frames)-1].Event, names(frames))
				} else {
					var done runState
					ts.json(http.MethodPost, path, "", req, http.StatusOK, &done)
					require.Equal(t, "COMPLETED", done.Status)
				}
				got := waitRun(t, ts, "/agents/clerk/runs/"+runID, "COMPLETED")
				require.Equal(t, "done", got.Content)
				tt.check(t, held[0], p, up)

				// Continuing again: the run is not paused.
				status, body, _ = ts.do(http.MethodPost, path, "", "application/json", req)
				require.Equal(t, http.StatusConflict, status, body)
			})
		}
	}
}

// TestApprovalNotNeeded: a call the policy's condition lets through runs
// without a pause, and no approval is recorded.
func TestApprovalNotNeeded(t *testing.T) {
	t.Parallel()
	ts, _, up := startApprovals(t, "1h", model.ToolCall{ID: "c", Name: "refund", Arguments: `{"order":"A2","amount":50}`})
	frames, _ := ts.stream("/agents/clerk/runs", "", "application/json", `{"message":"refund A2"}`)
	require.Equal(t, "RunCompleted", frames[len(frames)-1].Event, names(frames))
	require.Len(t, up.got(), 1)
	var count struct{ Count int }
	ts.json(http.MethodGet, "/approvals/count", "", "", http.StatusOK, &count)
	require.Zero(t, count.Count)
}

// TestApprovalResolve decides through the inbox: the run resumes by
// itself, a second decision is a 409 naming who decided, and the record
// keeps the decision.
func TestApprovalResolve(t *testing.T) {
	t.Parallel()
	ts, p, up := startApprovals(t, "1h", refundCall)
	runID, held := pause(t, ts)

	// The paused run lists its held call, as AgentOS lists them.
	var paused struct {
		Tools []pausedTool `json:"tools"`
	}
	ts.json(http.MethodGet, "/agents/clerk/runs/"+runID, "", "", http.StatusOK, &paused)
	require.Len(t, paused.Tools, 1)
	require.True(t, paused.Tools[0].RequiresConfirmation)
	require.Equal(t, held[0].ApprovalID, paused.Tools[0].ApprovalID)
	require.Equal(t, "call-1", paused.Tools[0].ToolCallID)

	var count struct{ Count int }
	ts.json(http.MethodGet, "/approvals/count", "", "", http.StatusOK, &count)
	require.Equal(t, 1, count.Count)
	var list struct {
		Data []approvalRecord
		Meta struct {
			TotalCount int `json:"total_count"`
		}
	}
	ts.json(http.MethodGet, "/approvals?status=pending&agent_id=clerk", "", "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	require.Equal(t, 1, list.Meta.TotalCount)
	rec := list.Data[0]
	require.Equal(t, held[0].ApprovalID, rec.ID)
	require.Equal(t, runID, rec.RunID)
	require.Equal(t, "refund", rec.Tool)
	require.Equal(t, "clerk", rec.AgentID)
	require.Equal(t, 500.0, rec.Args["amount"])
	require.Equal(t, "approve", rec.Default)
	ts.json(http.MethodGet, "/approvals?agent_id=other", "", "", http.StatusOK, &list)
	require.Empty(t, list.Data)

	ts.json(http.MethodPost, "/approvals/"+rec.ID+"/resolve", "", `{"approved":false,"comment":"not this one"}`, http.StatusOK, &rec)
	require.Equal(t, "rejected", rec.Status)
	require.Equal(t, "anonymous", rec.DecidedBy)
	require.Equal(t, "done", waitRun(t, ts, "/agents/clerk/runs/"+runID, "COMPLETED").Content)
	require.Empty(t, up.got())
	require.Contains(t, toolMessage(t, p), "not this one")

	status, body, _ := ts.do(http.MethodPost, "/approvals/"+rec.ID+"/resolve", "", "application/json", `{"approved":true}`)
	require.Equal(t, http.StatusConflict, status, body)
	require.Contains(t, body, "rejected by anonymous")

	// Traced: the paused execution's trace shows the held call, the
	// continued one's the decision (who, when, what).
	spans := map[string]traceNode{}
	require.Eventually(t, func() bool {
		var list struct {
			Data []map[string]any `json:"data"`
		}
		ts.json(http.MethodGet, "/traces?run_id="+runID, "", "", http.StatusOK, &list)
		for _, tr := range list.Data {
			var trace struct {
				Tree []traceNode `json:"tree"`
			}
			ts.json(http.MethodGet, "/traces/"+tr["trace_id"].(string), "", "", http.StatusOK, &trace)
			var walk func([]traceNode)
			walk = func(ns []traceNode) {
				for _, n := range ns {
					spans[n.Name] = n
					walk(n.Spans)
				}
			}
			walk(trace.Tree)
		}
		_, wait := spans["approval.wait refund"]
		_, decided := spans["approval.decision refund"]
		return wait && decided
	}, 10*time.Second, 50*time.Millisecond, "spans: %v", spans)
	d := spans["approval.decision refund"]
	require.Equal(t, "approval", d.Kind)
	require.Equal(t, "rejected", d.Attributes["approval.decision"])
	require.Equal(t, "anonymous", d.Attributes["approval.decided_by"])
	require.Equal(t, "not this one", d.Attributes["approval.comment"])
	require.Equal(t, rec.ID, d.Attributes["approval.id"])
	require.NotEmpty(t, d.Attributes["approval.decided_at"])
	require.Equal(t, "Refund of 500 for A1", spans["approval.wait refund"].Attributes["approval.reason"])
	ts.json(http.MethodGet, "/approvals/"+rec.ID, "", "", http.StatusOK, &rec)
	require.Equal(t, "rejected", rec.Status)
	require.Equal(t, "not this one", rec.Comment)
	ts.json(http.MethodGet, "/approvals/count", "", "", http.StatusOK, &count)
	require.Zero(t, count.Count)
	status, _, _ = ts.do(http.MethodPost, "/approvals/nope/resolve", "", "application/json", `{"approved":true}`)
	require.Equal(t, http.StatusNotFound, status)
}

// TestApprovalTimeout: nobody decides; at the deadline the job applies the
// default (approve) and the run completes, the call having run.
func TestApprovalTimeout(t *testing.T) {
	t.Parallel()
	ts, _, up := startApprovals(t, "1s", refundCall)
	runID, held := pause(t, ts)
	var r runState
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/agents/clerk/runs/"+runID, "", "", http.StatusOK, &r)
		return r.Status == "COMPLETED"
	}, 30*time.Second, 50*time.Millisecond, "the timeout never resumed the run (last: %+v)", r)
	require.Len(t, up.got(), 1)
	var rec approvalRecord
	ts.json(http.MethodGet, "/approvals/"+held[0].ApprovalID, "", "", http.StatusOK, &rec)
	require.Equal(t, "expired", rec.Status)
	require.Equal(t, "timeout", rec.DecidedBy)
	status, _, _ := ts.do(http.MethodPost, "/approvals/"+rec.ID+"/resolve", "", "application/json", `{"approved":false}`)
	require.Equal(t, http.StatusConflict, status, "an expired approval is decided")
}

// TestApprovalVisibility: a user-bound key sees and decides only the
// approvals whose approvers name its user (or its scopes); others are not
// found, not forbidden.
func TestApprovalVisibility(t *testing.T) {
	t.Parallel()
	const (
		admin  = "sk-admin-0123456789abcdef"
		alice  = "sk-alice-0123456789abcdef"
		bob    = "sk-bob-00123456789abcdef"
		runner = "sk-run-00123456789abcdef"
	)
	ts, _, _ := startApprovals(t, "1h", refundCall, withKeys(admin+"=admin,"+alice+"=approvals:write@alice,"+bob+"=approvals:write@bob,"+runner+"=agents:run+sessions:read"))
	frames, h := ts.stream("/agents/clerk/runs", admin, "application/json", `{"message":"refund order A1"}`)
	require.Equal(t, "RunPaused", frames[len(frames)-1].Event)
	runID := h.Get("X-Run-Id")
	var list struct{ Data []approvalRecord }
	status, body, _ := ts.do(http.MethodGet, "/approvals", runner, "", "")
	require.Equal(t, http.StatusForbidden, status, "approvals:write is needed: %s", body)

	ts.json(http.MethodGet, "/approvals", bob, "", http.StatusOK, &list)
	require.Empty(t, list.Data, "bob is no approver")
	var count struct{ Count int }
	ts.json(http.MethodGet, "/approvals/count", bob, "", http.StatusOK, &count)
	require.Zero(t, count.Count)
	ts.json(http.MethodGet, "/approvals", admin, "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	id := list.Data[0].ID
	for _, path := range []string{"/approvals/" + id} {
		status, _, _ := ts.do(http.MethodGet, path, bob, "", "")
		require.Equal(t, http.StatusNotFound, status)
	}
	status, _, _ = ts.do(http.MethodPost, "/approvals/"+id+"/resolve", bob, "application/json", `{"approved":true}`)
	require.Equal(t, http.StatusNotFound, status, "bob may not decide, and is not told it exists")

	// The run's continue route holds to the approvers too: a key that may
	// run agents but is no approver cannot confirm the call there.
	status, body, _ = ts.do(http.MethodPost, "/agents/clerk/runs/"+runID+"/continue", runner, "application/json", `{"tools":[{"tool_call_id":"call-1","confirmed":true}],"stream":false}`)
	require.Equal(t, http.StatusForbidden, status, body)
	require.Contains(t, body, "approvals inbox")

	ts.json(http.MethodGet, "/approvals", alice, "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	var rec approvalRecord
	ts.json(http.MethodPost, "/approvals/"+id+"/resolve", alice, `{"approved":true,"comment":"ok"}`, http.StatusOK, &rec)
	require.Equal(t, "alice", rec.DecidedBy)
	var r runState
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/agents/clerk/runs/"+runID, admin, "", http.StatusOK, &r)
		return r.Status == "COMPLETED"
	}, 15*time.Second, 20*time.Millisecond)
	require.True(t, strings.HasPrefix(r.Content, "done"))
}

// TestApprovalWebhook: a new approval is POSTed to the webhook, signed with
// HMAC-SHA256 of the body; a receiver that fails first gets it again.
func TestApprovalWebhook(t *testing.T) {
	t.Parallel()
	const secret = "whsec-0123456789"
	type delivery struct {
		sig  string
		body []byte
	}
	got := make(chan delivery, 4)
	var attempts atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if attempts.Add(1) == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		got <- delivery{sig: r.Header.Get("X-Troupe-Signature"), body: b}
	}))
	t.Cleanup(hook.Close)
	ts, _, _ := startApprovals(t, "1h", refundCall, withApprovalWebhook(hook.URL, secret))
	runID, held := pause(t, ts)

	var d delivery
	select {
	case d = <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("the webhook was not delivered (attempts: %d)", attempts.Load())
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(d.body)
	require.Equal(t, "sha256="+hex.EncodeToString(mac.Sum(nil)), d.sig)
	var ann struct {
		Event    string `json:"event"`
		Approval struct {
			ID     string         `json:"id"`
			RunID  string         `json:"run_id"`
			Tool   string         `json:"tool_name"`
			Args   map[string]any `json:"tool_args"`
			Reason string         `json:"reason"`
			Users  []string       `json:"approver_users"`
			Status string         `json:"status"`
		} `json:"approval"`
	}
	require.NoError(t, json.Unmarshal(d.body, &ann))
	require.Equal(t, "approval.created", ann.Event)
	require.Equal(t, held[0].ApprovalID, ann.Approval.ID)
	require.Equal(t, runID, ann.Approval.RunID)
	require.Equal(t, "refund", ann.Approval.Tool)
	require.Equal(t, "Refund of 500 for A1", ann.Approval.Reason)
	require.Equal(t, []string{"alice"}, ann.Approval.Users)
	require.Equal(t, "pending", ann.Approval.Status)
	require.Equal(t, int32(2), attempts.Load(), "delivered on the retry after a 503")
}

// teamSpecs put clerk in a team of each mode, led by the echo model.
const teamSpecs = `
---
kind: Team
name: desk-route
description: Routes to the clerk.
mode: route
model: echo
members: [clerk]
---
kind: Team
name: desk-coordinate
description: Delegates to the clerk.
mode: coordinate
model: echo
members: [clerk]
---
kind: Team
name: desk-broadcast
description: Asks the clerk.
mode: broadcast
model: echo
members: [clerk]
`

// TestApprovalTeams: a member's held call pauses the team run (stored
// PAUSED, the call tagged with the member); continuing it, through the
// team's continue route or the inbox, continues the member, and the team
// finishes with the member's answer.
func TestApprovalTeams(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"route", "coordinate", "broadcast"} {
		for _, via := range []string{"continue", "inbox"} {
			t.Run(mode+" via "+via, func(t *testing.T) {
				t.Parallel()
				up := &upstream{}
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					up.mu.Lock()
					up.bodies = append(up.bodies, map[string]any{"path": r.URL.Path})
					up.mu.Unlock()
					fmt.Fprint(w, "refunded")
				}))
				t.Cleanup(srv.Close)
				script := fake.New(fake.Step{ToolCalls: []model.ToolCall{refundCall}})
				script.Repeat = &fake.Step{Content: "clerk done"}
				ts := startServer(t, withProvider("anthropic", script), withSpecs(fmt.Sprintf(approvalSpecs, srv.URL, "1h")+teamSpecs))
				team := "/teams/desk-" + mode

				frames, h := ts.stream(team+"/runs", "", "application/json", `{"message":"refund order A1"}`)
				last := frames[len(frames)-1]
				require.Equal(t, "TeamRunPaused", last.Event, names(frames))
				runID := h.Get("X-Run-Id")
				b, _ := json.Marshal(last.Data["tools"])
				var held []struct {
					pausedTool
					Member string `json:"member"`
				}
				require.NoError(t, json.Unmarshal(b, &held))
				require.Len(t, held, 1)
				require.Equal(t, "clerk", held[0].Member)
				require.Equal(t, "call-1", held[0].ToolCallID)
				require.True(t, held[0].RequiresConfirmation)
				require.Equal(t, "PAUSED", waitRun(t, ts, team+"/runs/"+runID, "PAUSED").Status)
				require.Empty(t, up.got())

				var rec approvalRecord
				ts.json(http.MethodGet, "/approvals/"+held[0].ApprovalID, "", "", http.StatusOK, &rec)
				require.Equal(t, runID, rec.RunID)
				require.Equal(t, "pending", rec.Status)

				if via == "continue" {
					frames, _ = ts.stream(team+"/runs/"+runID+"/continue", "", "application/json", `{"tools":[{"tool_call_id":"call-1","confirmed":true}]}`)
					require.Equal(t, "TeamRunCompleted", frames[len(frames)-1].Event, names(frames))
				} else {
					ts.json(http.MethodPost, "/approvals/"+rec.ID+"/resolve", "", `{"approved":true}`, http.StatusOK, nil)
				}
				done := waitRun(t, ts, team+"/runs/"+runID, "COMPLETED")
				require.Contains(t, done.Content, "clerk done")
				require.Len(t, up.got(), 1, "the held call ran once")

				// The member's run is stored once, completed.
				var runs []struct {
					RunID       string `json:"run_id"`
					ParentRunID string `json:"parent_run_id"`
					Status      string `json:"status"`
					AgentID     string `json:"agent_id"`
				}
				ts.json(http.MethodGet, "/sessions/"+done.SessionID+"/runs", "", "", http.StatusOK, &runs)
				var members []string
				for _, r := range runs {
					if r.ParentRunID == runID {
						members = append(members, r.Status)
					}
				}
				require.Equal(t, []string{"COMPLETED"}, members)
			})
		}
	}
}

// TestApprovalContinueBackground continues a paused run as a form
// (AgentOS's client sends tools as a JSON form field) with background=true:
// 202 at once, and a job finishes the run.
func TestApprovalContinueBackground(t *testing.T) {
	t.Parallel()
	ts, _, up := startApprovals(t, "1h", refundCall)
	runID, _ := pause(t, ts)
	form := url.Values{"tools": {`[{"tool_call_id":"call-1","confirmed":true}]`}, "background": {"true"}}.Encode()
	status, body, h := ts.do(http.MethodPost, "/agents/clerk/runs/"+runID+"/continue", "", "application/x-www-form-urlencoded", form)
	require.Equal(t, http.StatusAccepted, status, body)
	require.Equal(t, runID, h.Get("X-Run-Id"))
	require.Equal(t, "done", waitRun(t, ts, "/agents/clerk/runs/"+runID, "COMPLETED").Content)
	require.Len(t, up.got(), 1)
	// Its events were logged for followers: resume replays the continued run.
	frames, _ := ts.stream("/agents/clerk/runs/"+runID+"/resume", "", "application/json", `{}`)
	require.Equal(t, "RunContinued", frames[0].Event, names(frames))
	require.Equal(t, "RunCompleted", frames[len(frames)-1].Event, names(frames))
}

// TestApprovalInWorkflowStep: a step's agent that needs a decision pauses
// the workflow: the step is checkpointed PAUSED with its agent run, which
// is PAUSED on its own with the call in the inbox; deciding it (in the inbox
// or through the agent run's continue route) continues the agent run, and
// its completion resumes the workflow from its checkpoints with the agent's
// answer as the step's output. The call runs once; the steps before it do
// not run again.
func TestApprovalInWorkflowStep(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"inbox", "continue"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			up := &upstream{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				up.mu.Lock()
				up.bodies = append(up.bodies, map[string]any{})
				up.mu.Unlock()
				fmt.Fprint(w, "refunded")
			}))
			t.Cleanup(srv.Close)
			script := fake.New(fake.Step{ToolCalls: []model.ToolCall{refundCall}})
			script.Repeat = &fake.Step{Content: "clerk done"}
			ts := startServer(t, withProvider("anthropic", script), withSpecs(fmt.Sprintf(approvalSpecs, srv.URL, "1h")+`
---
kind: Agent
name: noter
model: echo
---
kind: Workflow
name: refunds
steps:
  - {name: note, agent: noter, input: "noted {{ message }}"}
  - {name: refund, agent: clerk}
  - {name: after, agent: noter, input: "after {{ steps.refund.output }}"}
`))
			var r runState
			ts.json(http.MethodPost, "/workflows/refunds/runs", "", `{"message":"refund A1","stream":false}`, http.StatusOK, &r)
			require.Equal(t, "PAUSED", r.Status, r.Error)
			require.Contains(t, r.Content, "tool calls")
			var run wfRun
			ts.json(http.MethodGet, "/workflows/refunds/runs/"+r.RunID, "", "", http.StatusOK, &run)
			require.Len(t, run.Steps, 2)
			require.Equal(t, "PAUSED", run.Steps[1].Status)
			var held struct {
				ChildRunID string `json:"child_run_id"`
			}
			require.NoError(t, json.Unmarshal(run.Steps[1].Output, &held))
			require.NotEmpty(t, held.ChildRunID)

			// The agent run is paused on its own, its call in the inbox.
			var child struct {
				runState
				ParentRunID string       `json:"parent_run_id"`
				Tools       []pausedTool `json:"tools"`
			}
			ts.json(http.MethodGet, "/agents/clerk/runs/"+held.ChildRunID, "", "", http.StatusOK, &child)
			require.Equal(t, "PAUSED", child.Status)
			require.Equal(t, r.RunID, child.ParentRunID)
			require.Len(t, child.Tools, 1)
			var list struct{ Data []approvalRecord }
			ts.json(http.MethodGet, "/approvals?status=pending&agent_id=clerk", "", "", http.StatusOK, &list)
			require.Len(t, list.Data, 1)
			rec := list.Data[0]
			require.Equal(t, held.ChildRunID, rec.RunID)
			require.Equal(t, child.Tools[0].ApprovalID, rec.ID)
			require.Equal(t, "refund", rec.Tool)
			require.Empty(t, up.got(), "nothing ran before the decision")
			// The workflow's own continue route decides approval steps only.
			status, body, _ := ts.do(http.MethodPost, "/workflows/refunds/runs/"+r.RunID+"/continue", "", "application/json", `{"approved":true}`)
			require.Equal(t, http.StatusConflict, status, body)
			require.Contains(t, body, "waits on run "+held.ChildRunID)

			if via == "inbox" {
				ts.json(http.MethodPost, "/approvals/"+rec.ID+"/resolve", "", `{"approved":true}`, http.StatusOK, nil)
			} else {
				var done runState
				ts.json(http.MethodPost, "/agents/clerk/runs/"+held.ChildRunID+"/continue", "", `{"tools":[{"tool_call_id":"call-1","confirmed":true}],"stream":false}`, http.StatusOK, &done)
				require.Equal(t, "COMPLETED", done.Status, done.Error)
			}
			run = waitWorkflow(t, ts, "refunds", r.RunID)
			require.Equal(t, "COMPLETED", run.Status, run.Error)
			require.Equal(t, "Echo: after clerk done", run.Content)
			require.Len(t, run.Steps, 3)
			require.JSONEq(t, `"clerk done"`, string(run.Steps[1].Output))
			require.Equal(t, 1, run.Steps[0].Attempts, "the step before the pause did not run again")
			require.Len(t, up.got(), 1, "the held call ran once")
			require.Equal(t, "COMPLETED", waitRun(t, ts, "/agents/clerk/runs/"+held.ChildRunID, "COMPLETED").Status)

			status, body, _ = ts.do(http.MethodPost, "/approvals/"+rec.ID+"/resolve", "", "application/json", `{"approved":false}`)
			require.Equal(t, http.StatusConflict, status, body)
		})
	}
}

// TestApprovalInWorkflowStepCancelled: cancelling the paused run of a
// workflow's step rejects its approvals and resumes the workflow, whose
// step then fails: nothing stays paused.
func TestApprovalInWorkflowStepCancelled(t *testing.T) {
	t.Parallel()
	script := fake.New(fake.Step{ToolCalls: []model.ToolCall{refundCall}})
	script.Repeat = &fake.Step{Content: "clerk done"}
	ts := startServer(t, withProvider("anthropic", script), withSpecs(fmt.Sprintf(approvalSpecs, "http://127.0.0.1:9", "1h")+`
---
kind: Workflow
name: refunds
steps:
  - {name: refund, agent: clerk}
`))
	var r runState
	ts.json(http.MethodPost, "/workflows/refunds/runs", "", `{"message":"refund A1","stream":false}`, http.StatusOK, &r)
	require.Equal(t, "PAUSED", r.Status, r.Error)
	var list struct{ Data []approvalRecord }
	ts.json(http.MethodGet, "/approvals?status=pending&agent_id=clerk", "", "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	child := list.Data[0].RunID
	ts.json(http.MethodPost, "/agents/clerk/runs/"+child+"/cancel", "", "", http.StatusOK, nil)
	run := waitWorkflow(t, ts, "refunds", r.RunID)
	require.Equal(t, "ERROR", run.Status)
	require.Contains(t, run.Error, "run "+child+": ")
	var rec approvalRecord
	ts.json(http.MethodGet, "/approvals/"+list.Data[0].ID, "", "", http.StatusOK, &rec)
	require.Equal(t, "rejected", rec.Status)
}

// TestApprovalOpenAI: a chat completion whose agent pauses answers 409 with
// code paused and says how to go on.
func TestApprovalOpenAI(t *testing.T) {
	t.Parallel()
	ts, _, _ := startApprovals(t, "1h", refundCall)
	status, body, _ := ts.do(http.MethodPost, "/v1/chat/completions", "", "application/json", `{"model":"clerk","messages":[{"role":"user","content":"refund A1"}]}`)
	require.Equal(t, http.StatusConflict, status, body)
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	require.Equal(t, "paused", e.Error.Code)
	require.Contains(t, e.Error.Message, "/approvals/{id}/resolve")
	require.Contains(t, e.Error.Message, "/agents/clerk/runs/")
	var count struct{ Count int }
	ts.json(http.MethodGet, "/approvals/count", "", "", http.StatusOK, &count)
	require.Equal(t, 1, count.Count)
}

// TestApprovalCancelPaused: cancelling a paused run ends it CANCELLED at
// once and rejects its pending approvals; it cannot be continued after.
func TestApprovalCancelPaused(t *testing.T) {
	t.Parallel()
	ts, _, up := startApprovals(t, "1h", refundCall)
	runID, held := pause(t, ts)
	var out struct{ Status string }
	ts.json(http.MethodPost, "/agents/clerk/runs/"+runID+"/cancel", "", "", http.StatusOK, &out)
	require.Equal(t, "cancelled", out.Status)
	require.Equal(t, "CANCELLED", waitRun(t, ts, "/agents/clerk/runs/"+runID, "CANCELLED").Status)
	var rec approvalRecord
	ts.json(http.MethodGet, "/approvals/"+held[0].ApprovalID, "", "", http.StatusOK, &rec)
	require.Equal(t, "rejected", rec.Status)
	require.Equal(t, "the run was cancelled", rec.Comment)
	status, _, _ := ts.do(http.MethodPost, "/agents/clerk/runs/"+runID+"/continue", "", "application/json", `{"tools":[{"tool_call_id":"call-1","confirmed":true}]}`)
	require.Equal(t, http.StatusConflict, status)
	status, _, _ = ts.do(http.MethodPost, "/agents/clerk/runs/"+runID+"/cancel", "", "", "")
	require.Equal(t, http.StatusNotFound, status, "nothing left to cancel")
	require.Empty(t, up.got())
}
