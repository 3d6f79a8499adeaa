package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// inboxSpecs are approvalSpecs with a second agent, teller, for filters.
const inboxSpecs = approvalSpecs + `---
kind: Agent
name: teller
description: Refunds orders too.
model: scripted
tools: [refund]
`

// askRefund asks for a refund of amount on each new message (the last
// message is the user's); after a tool result it answers "done".
func askRefund(amount int) fake.Step {
	return fake.Step{ToolCalls: []model.ToolCall{{ID: "call-1", Name: "refund", Arguments: fmt.Sprintf(`{"order":"A%d","amount":%d}`, amount, amount)}},
		Match: func(r *model.Request) bool { return r.Messages[len(r.Messages)-1].Role == model.RoleUser }}
}

const (
	inboxAdmin  = "sk-admin-0123456789abcdef"
	inboxAlice  = "sk-alice-0123456789abcdef"
	inboxBob    = "sk-bob-00123456789abcdef"
	inboxReader = "sk-read-0123456789abcdef"
	inboxAll    = inboxAdmin + "=admin," + inboxAlice + "=approvals:write+agents:run+agents:read+sessions:read@alice," +
		inboxBob + "=approvals:write+agents:read@bob," + inboxReader + "=agents:read+sessions:read"
)

// startUpstream is the refund endpoint: it says ok.
func startUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"ok":true}`) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// startInbox pauses three runs on refunds alice must approve: clerk for u1
// (amount 500) and u2 (600), teller for u1 (700).
func startInbox(t *testing.T) (*testServer, []string) {
	t.Helper()
	script := fake.New(askRefund(500), askRefund(600), askRefund(700))
	script.Repeat = &fake.Step{Content: "done"}
	up := startUpstream(t)
	ts := startServer(t, withProvider("anthropic", script), withSpecs(fmt.Sprintf(inboxSpecs, up, "1h")), withKeys(inboxAll))
	var runs []string
	for _, r := range []struct{ agent, user string }{{"clerk", "u1"}, {"clerk", "u2"}, {"teller", "u1"}} {
		frames, h := ts.stream("/agents/"+r.agent+"/runs", inboxAdmin, "application/json", `{"message":"refund for `+r.user+`","user_id":"`+r.user+`"}`)
		require.Equal(t, "RunPaused", frames[len(frames)-1].Event, names(frames))
		runs = append(runs, h.Get("X-Run-Id"))
	}
	return ts, runs
}

// TestConsoleApprovalsInbox: the inbox page's filters and paging, each
// request's run context, and who sees the page and its entries.
func TestConsoleApprovalsInbox(t *testing.T) {
	t.Parallel()
	ts, runs := startInbox(t)
	tests := []struct {
		name, key, query string
		tools            []string // the approvals listed, newest first
		pager            string
	}{
		{name: "admin sees all pending", key: inboxAdmin, query: "", tools: []string{"A700", "A600", "A500"}},
		{name: "alice is their approver", key: inboxAlice, query: "?status=pending", tools: []string{"A700", "A600", "A500"}},
		{name: "bob is no approver", key: inboxBob, query: "?status=all"},
		{name: "by agent", key: inboxAlice, query: "?target=agent:teller", tools: []string{"A700"}},
		{name: "by user", key: inboxAlice, query: "?user=u2", tools: []string{"A600"}},
		{name: "by agent and user", key: inboxAlice, query: "?target=agent:clerk&user=u1", tools: []string{"A500"}},
		{name: "none approved yet", key: inboxAlice, query: "?status=approved"},
		{name: "page 1 of 2", key: inboxAlice, query: "?status=all&limit=2", tools: []string{"A700", "A600"}, pager: "Page 1 of 2"},
		{name: "page 2 of 2", key: inboxAlice, query: "?status=all&limit=2&page=2", tools: []string{"A500"}, pager: "Page 2 of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.page(http.MethodGet, "/ui/approvals"+tt.query, tt.key, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			d := doc(t, body)
			var got []string
			d.Find(`[data-testid="approval-args"]`).Each(func(_ int, s *goquery.Selection) {
				for _, o := range []string{"A500", "A600", "A700"} {
					if strings.Contains(s.Text(), `"`+o+`"`) {
						got = append(got, o)
					}
				}
			})
			require.Equal(t, tt.tools, got)
			if len(tt.tools) == 0 {
				require.Equal(t, 1, d.Find(`[data-testid="no-approvals"]`).Length())
			}
			if tt.pager != "" {
				require.Contains(t, d.Find(`[data-testid="pager"]`).Text(), tt.pager)
				require.Contains(t, body, "limit=2", "the pager keeps the filters")
			}
		})
	}

	// Each request carries its run's context and links.
	_, body := ts.page(http.MethodGet, "/ui/approvals?target=agent:clerk&user=u1", inboxAlice, nil)
	item := doc(t, body).Find(`[data-testid="approval"]`)
	require.Equal(t, 1, item.Length())
	require.Equal(t, "refund", item.Find(`[data-testid="approval-tool"]`).Text())
	require.Equal(t, "refund for u1", item.Find(`[data-testid="approval-message"]`).Text())
	require.Equal(t, "Refund of 500 for A500", item.Find(`[data-testid="approval-reason"]`).Text())
	require.Contains(t, item.Find(`[data-testid="approval-args"]`).Text(), "\n  \"amount\": 500", "arguments are pretty JSON")
	require.Contains(t, item.Text(), "user alice")
	require.Contains(t, item.Text(), "approve", "the default decision")
	href, _ := item.Find(`[data-testid="approval-trace"]`).Attr("href")
	require.Equal(t, "/ui/runs/"+runs[0]+"/trace", href)
	require.Equal(t, 1, item.Find(`[data-testid="approve"]`).Length())

	// The badge counts what the principal may decide.
	for key, want := range map[string]string{inboxAlice: "3", inboxBob: "0", inboxAdmin: "3"} {
		resp, body := ts.page(http.MethodGet, "/ui/approvals/count", key, nil, "HX-Request", "true")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		badge := doc(t, body).Find(`[data-testid="approval-count"]`)
		require.Equal(t, want, badge.AttrOr("data-count", ""), key)
		require.NotContains(t, badge.AttrOr("hx-trigger", ""), "load", "a loaded count must not load itself again")
		require.Contains(t, badge.AttrOr("hx-trigger", ""), "every 3s")
	}

	// The navigation links the inbox for approvers only; a reader gets 403.
	_, body = ts.page(http.MethodGet, "/ui/agents", inboxAlice, nil)
	require.Equal(t, 1, doc(t, body).Find(`[data-testid="nav-approvals"]`).Length())
	_, body = ts.page(http.MethodGet, "/ui/agents", inboxReader, nil)
	require.Zero(t, doc(t, body).Find(`[data-testid="nav-approvals"]`).Length())
	_, body = ts.page(http.MethodGet, "/ui/login", "", nil)
	require.Zero(t, doc(t, body).Find(`[data-testid="nav-approvals"]`).Length(), "before sign-in the badge's poll would reload the page forever")
	for _, path := range []string{"/ui/approvals", "/ui/approvals/count"} {
		resp, _ := ts.page(http.MethodGet, path, inboxReader, nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, path)
	}
	resp, _ := ts.page(http.MethodGet, "/ui/approvals?status=maybe", inboxAlice, nil)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
}

// TestConsoleApprovalsResolve: deciding from the inbox uses the resolve
// route's logic: the row comes back decided and the run resumes; a second
// decision says who decided and when (409 without htmx); a key that may
// not decide gets 404, as on the API.
func TestConsoleApprovalsResolve(t *testing.T) {
	t.Parallel()
	ts, runs := startInbox(t)
	var list struct{ Data []approvalRecord }
	ts.json(http.MethodGet, "/approvals?agent_id=teller", inboxAlice, "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	id := list.Data[0].ID
	path := "/ui/approvals/" + id + "/resolve"

	resp, _ := ts.page(http.MethodPost, path, inboxBob, url.Values{"decision": {"approve"}}, "HX-Request", "true")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "bob may not decide, and is not told it exists")
	resp, _ = ts.page(http.MethodPost, path, inboxReader, url.Values{"decision": {"approve"}}, "HX-Request", "true")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = ts.page(http.MethodPost, path, inboxAlice, url.Values{"decision": {"maybe"}}, "HX-Request", "true")
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)

	resp, body := ts.page(http.MethodPost, path, inboxAlice, url.Values{"decision": {"approve"}, "comment": {"fine"}}, "HX-Request", "true")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	row := doc(t, body).Find(`[data-testid="approval"]`)
	require.Equal(t, "approval-"+id, row.AttrOr("id", ""))
	require.Equal(t, "approved", row.AttrOr("data-status", ""))
	require.Contains(t, row.Find(`[data-testid="approval-decided"]`).Text(), "approved by alice")
	require.Contains(t, row.Find(`[data-testid="approval-decided"]`).Text(), "fine")
	require.Zero(t, row.Find(`[data-testid="approve"]`).Length(), "a decided row has no buttons")
	var r runState
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/agents/teller/runs/"+runs[2], inboxAdmin, "", http.StatusOK, &r)
		return r.Status == "COMPLETED"
	}, 15*time.Second, 10*time.Millisecond, "the run resumes by itself")
	require.True(t, strings.HasPrefix(r.Content, "done"), r.Content)

	// A second decision, in place (htmx) and as a plain form.
	resp, body = ts.page(http.MethodPost, path, inboxAdmin, url.Values{"decision": {"reject"}}, "HX-Request", "true")
	require.Equal(t, http.StatusOK, resp.StatusCode, "htmx swaps only 2xx: the row says why")
	notice := doc(t, body).Find(`[data-testid="approval-notice"]`).Text()
	require.Regexp(t, `already approved by alice at \d{4}-\d\d-\d\dT`, notice)
	resp, body = ts.page(http.MethodPost, path, inboxAdmin, url.Values{"decision": {"reject"}}, "Accept", "text/html")
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Contains(t, body, "already approved by alice at")
	var rec approvalRecord
	ts.json(http.MethodGet, "/approvals/"+id, inboxAdmin, "", http.StatusOK, &rec)
	require.Equal(t, "alice", rec.DecidedBy, "the refused decision changed nothing")

	// The badge dropped to what is left.
	_, body = ts.page(http.MethodGet, "/ui/approvals/count", inboxAlice, nil, "HX-Request", "true")
	require.Equal(t, "2", doc(t, body).Find(`[data-testid="approval-count"]`).AttrOr("data-count", ""))
}

// chatEvent is one event of the chat pane's stream.
type chatEvent struct {
	Name string
	Data map[string]string
}

func chatEvents(t *testing.T, body string) []chatEvent {
	t.Helper()
	var out []chatEvent
	for _, frame := range strings.Split(body, "\n\n") {
		name, rest, ok := strings.Cut(frame, "\n")
		name, isEvent := strings.CutPrefix(name, "event: ")
		data, isData := strings.CutPrefix(rest, "data: ")
		if !ok || !isEvent || !isData {
			continue
		}
		var d map[string]string
		require.NoError(t, json.Unmarshal([]byte(data), &d), data)
		out = append(out, chatEvent{name, d})
	}
	return out
}

// TestConsolePausedChat: a chat turn that pauses ends with its held call,
// and a form for a principal who may decide it, or a pointer to the inbox
// for one who may not; the form continues the run through the continue
// route's logic and streams the rest into the same turn.
func TestConsolePausedChat(t *testing.T) {
	t.Parallel()
	const runner = "sk-runner-0123456789abcdef"
	script := fake.New(askRefund(500), askRefund(600))
	script.Repeat = &fake.Step{Content: "done"}
	ts := startServer(t, withProvider("anthropic", script), withSpecs(fmt.Sprintf(inboxSpecs, startUpstream(t), "1h")),
		withKeys(inboxAll+","+runner+"=agents:run+agents:read+sessions:read"))

	// One that may run agents but decide nothing is pointed to the inbox.
	resp, body := ts.page(http.MethodPost, "/ui/agents/clerk/chat", runner, url.Values{"message": {"refund A500"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	evs := chatEvents(t, body)
	end := evs[len(evs)-1]
	require.Equal(t, "end", end.Name)
	held := doc(t, end.Data["h"])
	require.Contains(t, held.Find(`[data-testid="usage"]`).Text(), "PAUSED")
	require.Equal(t, "refund", held.Find(`[data-testid="held-tool"]`).Text())
	require.Equal(t, "Refund of 500 for A500", held.Find(`[data-testid="held-reason"]`).Text())
	require.Zero(t, held.Find(`[data-testid="held-form"]`).Length())
	require.Contains(t, held.Find(`[data-testid="held-waiting"]`).Text(), "approvals inbox")
	waiting := evs[0].Data["run"]
	poll := held.Find(`[data-testid="held"]`).AttrOr("hx-get", "")
	require.Equal(t, "/ui/agents/clerk/runs/"+waiting+"/held", poll, "the waiting turn polls")

	// Alice, the approver, gets the form; rejecting continues the run.
	resp, body = ts.page(http.MethodPost, "/ui/agents/clerk/chat", inboxAlice, url.Values{"message": {"refund A600"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	evs = chatEvents(t, body)
	runID := evs[0].Data["run"]
	form := doc(t, evs[len(evs)-1].Data["h"]).Find(`[data-testid="held-form"]`)
	require.Equal(t, 1, form.Length())
	action := form.AttrOr("data-continue", "")
	require.Equal(t, "/ui/agents/clerk/runs/"+runID+"/continue", action)
	require.Equal(t, 1, form.Find(`[data-testid="held-reject"]`).Length())

	resp, body = ts.page(http.MethodPost, action, runner, url.Values{"decision": {"approve"}}, "HX-Request", "true")
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "as on the continue route, only approvers confirm: %s", body)
	require.Contains(t, body, "approvals inbox")
	resp, body = ts.page(http.MethodPost, action, inboxAlice, url.Values{"decision": {"reject"}, "comment": {"too much"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	evs = chatEvents(t, body)
	require.Equal(t, "replace", evs[0].Name)
	require.Equal(t, "held-"+runID, evs[0].Data["t"])
	require.Contains(t, evs[0].Data["h"], "Rejected by alice")
	var answer strings.Builder
	for _, e := range evs {
		if e.Name == "text" {
			require.Equal(t, "a-"+runID, e.Data["t"], "the answer streams into the same turn")
			answer.WriteString(e.Data["s"])
		}
	}
	require.Equal(t, "done", answer.String())
	last := evs[len(evs)-1]
	require.Equal(t, "m-"+runID, last.Data["t"])
	require.Contains(t, last.Data["h"], "COMPLETED")
	require.Contains(t, toolMessage(t, script), "too much", "the model read the rejection and its comment")

	// Alice approves the waiting turn's call in the inbox: its poll shows the
	// answer, and stops.
	resp, body = ts.page(http.MethodGet, poll, runner, nil, "HX-Request", "true")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, poll, doc(t, body).Find(`[data-testid="held"]`).AttrOr("hx-get", ""), "still paused: still polling")
	var list struct{ Data []approvalRecord }
	ts.json(http.MethodGet, "/approvals?status=pending", inboxAlice, "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	resp, _ = ts.page(http.MethodPost, "/ui/approvals/"+list.Data[0].ID+"/resolve", inboxAlice, url.Values{"decision": {"approve"}}, "HX-Request", "true")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		_, body = ts.page(http.MethodGet, poll, runner, nil, "HX-Request", "true")
		return doc(t, body).Find(`[data-testid="held-outcome"]`).AttrOr("data-status", "") == "COMPLETED"
	}, 15*time.Second, 20*time.Millisecond)
	out := doc(t, body)
	require.Equal(t, "done", out.Find(`[data-testid="held-answer"]`).Text())
	require.Zero(t, out.Find(`[hx-get]`).Length(), "a finished run ends the polling")

	resp, body = ts.page(http.MethodPost, action, inboxAlice, url.Values{"decision": {"approve"}})
	require.Equal(t, http.StatusConflict, resp.StatusCode, body)
	require.Contains(t, body, "only a paused run can be continued")
}
