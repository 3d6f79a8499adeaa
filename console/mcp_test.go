package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine/model/fake"
)

// mcpSpecs add to the fixture an echo agent, a team named like an agent
// (calc), a workflow named like a team (crew), a workflow with an input
// schema and one with an object output schema.
const mcpSpecs = `kind: Agent
name: echoer
description: Echoes.
model: echo
---
kind: Team
name: calc
mode: route
model: echo
members: [echoer]
---
kind: Workflow
name: crew
steps:
  - {name: only, agent: echoer}
---
kind: Workflow
name: brief
description: Briefs on a topic.
input:
  type: object
  properties: {topic: {type: string}}
  required: [topic]
steps:
  - {name: about, agent: echoer, input: "about {{ input.topic }}"}
---
kind: Agent
name: judge
model: echo
output_schema:
  type: object
  properties: {title: {type: string}}
  required: [title]
---
kind: Workflow
name: shaped
steps:
  - {name: verdict, agent: judge}
output:
  schema:
    type: object
    properties: {title: {type: string}}
    required: [title]
---
kind: Workflow
name: wrong
steps:
  - {name: draft, agent: echoer}
output:
  template: "{{ {'title': size(steps.draft.output)} }}"
  schema:
    type: object
    properties: {title: {type: string}}
`

// bearerTransport sends key on every request of an MCP client.
type bearerTransport struct{ key string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.key != "" {
		r.Header.Set("Authorization", "Bearer "+b.key)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// connectMCP connects the go-sdk client to the server's /mcp with key.
func connectMCP(t testing.TB, ts *testServer, key string, opts *sdk.ClientOptions) (*sdk.ClientSession, error) {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, opts)
	cs, err := c.Connect(t.Context(), &sdk.StreamableClientTransport{Endpoint: ts.url + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{key}}, MaxRetries: -1}, nil)
	if err == nil {
		t.Cleanup(func() { _ = cs.Close() })
	}
	return cs, err
}

func toolNames(t *testing.T, cs *sdk.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	require.NoError(t, err)
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func toolText(t *testing.T, res *sdk.CallToolResult) string {
	t.Helper()
	var parts []string
	for _, c := range res.Content {
		tc, ok := c.(*sdk.TextContent)
		require.True(t, ok, "content %T", c)
		parts = append(parts, tc.Text)
	}
	return strings.Join(parts, "\n")
}

func callTool(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) *sdk.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	return res
}

// TestMCPServerTools: the go-sdk client lists every agent, team and
// workflow as a tool (kind-prefixed on a name clash) beside the operator
// tools, and calling them runs them: an agent (streaming its answer as
// progress, continuing its session), a workflow with an input schema and
// one with structured output.
func TestMCPServerTools(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(mcpSpecs))
	var progress []string
	var mu sync.Mutex
	cs, err := connectMCP(t, ts, "", &sdk.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, r.Params.Message)
	}})
	require.NoError(t, err)

	require.Equal(t, []string{"brief", "calc", "cancel_run", "continue_run", "crew", "echoer", "get_session_runs", "helpdesk", "judge",
		"list_sessions", "shaped", "team.calc", "workflow.crew", "writer", "wrong"}, toolNames(t, cs))
	res, err := cs.ListTools(t.Context(), nil)
	require.NoError(t, err)
	byName := map[string]*sdk.Tool{}
	for _, tool := range res.Tools {
		byName[tool.Name] = tool
	}
	require.Equal(t, "Echoes.", byName["echoer"].Description)
	require.Equal(t, map[string]any{"type": "object", "required": []any{"message"}, "properties": map[string]any{
		"message":    map[string]any{"type": "string", "description": "The input message"},
		"session_id": map[string]any{"type": "string", "description": "Continue this session (its history applies); a new session when empty. Results name their session in _meta."},
	}}, byName["echoer"].InputSchema)
	require.Equal(t, map[string]any{"type": "object", "properties": map[string]any{"topic": map[string]any{"type": "string"}}, "required": []any{"topic"}},
		byName["brief"].InputSchema)
	require.Equal(t, map[string]any{"type": "object", "properties": map[string]any{"title": map[string]any{"type": "string"}}, "required": []any{"title"}},
		byName["shaped"].OutputSchema)
	require.Nil(t, byName["brief"].OutputSchema)

	// An agent: its answer, streamed as progress when the call asks.
	params := &sdk.CallToolParams{Name: "echoer", Arguments: map[string]any{"message": "hello there"}}
	params.SetProgressToken("p1")
	got, err := cs.CallTool(t.Context(), params)
	require.NoError(t, err)
	require.False(t, got.IsError, toolText(t, got))
	require.Equal(t, "Echo: hello there", toolText(t, got))
	require.Equal(t, "COMPLETED", got.Meta["troupe/status"])
	sessionID, _ := got.Meta["troupe/session_id"].(string)
	require.NotEmpty(t, sessionID)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(progress, "") == "Echo: hello there"
	}, 5*time.Second, 10*time.Millisecond)

	// The session continues: the second run is stored in it.
	again := callTool(t, cs, "echoer", map[string]any{"message": "again", "session_id": sessionID})
	require.Equal(t, "Echo: again", toolText(t, again))
	require.Equal(t, sessionID, again.Meta["troupe/session_id"])
	runs := callTool(t, cs, "get_session_runs", map[string]any{"session_id": sessionID})
	require.False(t, runs.IsError, toolText(t, runs))
	var stored []struct {
		RunInput string `json:"run_input"`
		Content  string `json:"content"`
	}
	require.NoError(t, json.Unmarshal([]byte(toolText(t, runs)), &stored))
	require.Len(t, stored, 2)
	require.ElementsMatch(t, []string{"Echo: hello there", "Echo: again"}, []string{stored[0].Content, stored[1].Content})

	// A team named like an agent, and a workflow named like a team.
	require.Equal(t, "Echo: hi team", toolText(t, callTool(t, cs, "team.calc", map[string]any{"message": "hi team"})))
	require.Equal(t, "Echo: hi flow", toolText(t, callTool(t, cs, "workflow.crew", map[string]any{"message": "hi flow"})))

	// A workflow takes its input object; a wrong one is refused.
	require.Equal(t, "Echo: about go", toolText(t, callTool(t, cs, "brief", map[string]any{"topic": "go"})))
	bad := callTool(t, cs, "brief", map[string]any{"topic": 3})
	require.True(t, bad.IsError)
	require.Contains(t, toolText(t, bad), "the input does not match workflow brief's input schema")

	// Structured output.
	shaped := callTool(t, cs, "shaped", map[string]any{"message": "go"})
	require.False(t, shaped.IsError, toolText(t, shaped))
	require.Equal(t, map[string]any{"title": "Echo: go"}, shaped.StructuredContent)
	require.JSONEq(t, `{"title":"Echo: go"}`, toolText(t, shaped))

	// A failed run is an error result with its message.
	wrong := callTool(t, cs, "wrong", map[string]any{"message": "x"})
	require.True(t, wrong.IsError, toolText(t, wrong))
	require.Equal(t, "the run failed: workflow wrong: the output does not match output.schema: at /title: got number, want string", toolText(t, wrong))
	require.Equal(t, "ERROR", wrong.Meta["troupe/status"])
}

// TestMCPServerFollowsReloads: a new agent file adds a tool; the connected
// client is told (notifications/tools/list_changed) and lists and calls it
// without reconnecting; removing the file removes the tool.
func TestMCPServerFollowsReloads(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withWatcher())
	changed := make(chan struct{}, 16)
	cs, err := connectMCP(t, ts, "", &sdk.ClientOptions{ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) {
		changed <- struct{}{}
	}})
	require.NoError(t, err)
	require.NotContains(t, toolNames(t, cs), "fresh")

	path := filepath.Join(ts.dir, "fresh.yaml")
	require.NoError(t, os.WriteFile(path, []byte("kind: Agent\nname: fresh\ndescription: Just added.\nmodel: echo\n"), 0o644))
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed after a new agent was saved")
	}
	require.Contains(t, toolNames(t, cs), "fresh")
	require.Equal(t, "Echo: new", toolText(t, callTool(t, cs, "fresh", map[string]any{"message": "new"})))

	require.NoError(t, os.Remove(path))
	require.Eventually(t, func() bool { return !slices.Contains(toolNames(t, cs), "fresh") }, 10*time.Second, 20*time.Millisecond)
}

// TestMCPServerAuth: /mcp wants a key like the API; a key without the run
// scope lists the tools but may not run them; a bound key runs as its user
// and its operator tools see only that user's sessions and runs.
func TestMCPServerAuth(t *testing.T) {
	t.Parallel()
	const (
		admin  = "sk-admin-0123456789abcdef"
		reader = "sk-reader-0123456789abcdef"
		alice  = "sk-alice-0123456789abcdef"
		bob    = "sk-bob-0123456789abcdef"
		none   = "sk-none-0123456789abcdef"
	)
	user := "=agents:read+agents:run+sessions:read"
	ts := startServer(t, withSpecs(mcpSpecs), withKeys(admin+"=admin,"+reader+"=agents:read+sessions:read,"+alice+user+"@alice,"+bob+user+"@bob,"+none+"=sessions:read"))

	_, err := connectMCP(t, ts, "", nil)
	require.ErrorContains(t, err, "Unauthorized")
	_, err = connectMCP(t, ts, "sk-wrong-0123456789abcdef", nil)
	require.ErrorContains(t, err, "Unauthorized")
	_, err = connectMCP(t, ts, none, nil)
	require.ErrorContains(t, err, "Forbidden")

	rc, err := connectMCP(t, ts, reader, nil)
	require.NoError(t, err)
	require.Contains(t, toolNames(t, rc), "echoer")
	refused := callTool(t, rc, "echoer", map[string]any{"message": "hi"})
	require.True(t, refused.IsError)
	require.Equal(t, "this API key lacks the agents:run scope: use a key with it to run agent echoer", toolText(t, refused))

	ac, err := connectMCP(t, ts, alice, nil)
	require.NoError(t, err)
	bc, err := connectMCP(t, ts, bob, nil)
	require.NoError(t, err)
	aRun := callTool(t, ac, "echoer", map[string]any{"message": "from alice"})
	require.Equal(t, "Echo: from alice", toolText(t, aRun))
	bRun := callTool(t, bc, "echoer", map[string]any{"message": "from bob"})
	require.Equal(t, "Echo: from bob", toolText(t, bRun))
	aSession := aRun.Meta["troupe/session_id"].(string)

	type sessionList struct {
		Data []struct {
			SessionID string `json:"session_id"`
			UserID    string `json:"user_id"`
		} `json:"data"`
	}
	sessionsOf := func(cs *sdk.ClientSession) []string {
		res := callTool(t, cs, "list_sessions", nil)
		require.False(t, res.IsError, toolText(t, res))
		var l sessionList
		require.NoError(t, json.Unmarshal([]byte(toolText(t, res)), &l))
		var out []string
		for _, s := range l.Data {
			out = append(out, s.UserID+":"+s.SessionID)
		}
		return out
	}
	require.Equal(t, []string{"alice:" + aSession}, sessionsOf(ac))
	require.Equal(t, []string{"bob:" + bRun.Meta["troupe/session_id"].(string)}, sessionsOf(bc))
	// The reader's key is not bound: it sees both, and the refused call
	// started no run.
	require.Len(t, sessionsOf(rc), 2)

	// Bob can neither read nor cancel alice's runs.
	theirs := callTool(t, bc, "get_session_runs", map[string]any{"session_id": aSession})
	require.True(t, theirs.IsError)
	require.Contains(t, toolText(t, theirs), "not found")
	cancel := callTool(t, bc, "cancel_run", map[string]any{"run_id": aRun.Meta["troupe/run_id"].(string)})
	require.True(t, cancel.IsError)
	require.Equal(t, "no run "+aRun.Meta["troupe/run_id"].(string)+": list_sessions and get_session_runs name the runs you may see", toolText(t, cancel))
	// Alice's own run has finished: nothing to cancel, as the route says.
	own := callTool(t, ac, "cancel_run", map[string]any{"run_id": aRun.Meta["troupe/run_id"].(string)})
	require.True(t, own.IsError)
	require.Equal(t, "no run "+aRun.Meta["troupe/run_id"].(string)+" of agent echoer is in progress", toolText(t, own))

	// A session opened with one key cannot be used with another.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+bob)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", ac.ID())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// TestMCPServerDisabled: Options.DisableMCP (troupe serve --mcp=false)
// leaves /mcp out.
func TestMCPServerDisabled(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withOptions(func(o *console.Options) { o.DisableMCP = true }))
	status, _, _ := ts.do(http.MethodPost, "/mcp", "", "application/json", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	require.Equal(t, http.StatusNotFound, status)
}

// TestMCPServerTypeScriptClient: a third-party client, the official
// TypeScript SDK from npm run by node, lists the tools and calls an agent
// and two workflows through /mcp with a bound key. It needs Node.js and the
// npm registry, so it runs only when TROUPE_TEST_NPX=1.
func TestMCPServerTypeScriptClient(t *testing.T) {
	if os.Getenv("TROUPE_TEST_NPX") != "1" {
		t.Skip("set TROUPE_TEST_NPX=1 to run the MCP TypeScript SDK from npm against /mcp (needs node, npm and the npm registry)")
	}
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"client.mjs", "package.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "mcpclient", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	out, err := install.CombinedOutput()
	require.NoError(t, err, string(out))

	const alice = "sk-alice-0123456789abcdef"
	ts := startServer(t, withSpecs(mcpSpecs), withKeys(alice+"=agents:read+agents:run+sessions:read@alice"))
	node := exec.CommandContext(ctx, "node", "client.mjs", ts.url+"/mcp", alice)
	node.Dir = dir
	var stderr strings.Builder
	node.Stderr = &stderr
	out, err = node.Output()
	require.NoError(t, err, stderr.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got), string(out))
	require.Equal(t, map[string]any{
		"server": "troupe",
		"tools": []any{"brief", "calc", "cancel_run", "continue_run", "crew", "echoer", "get_session_runs", "helpdesk", "judge",
			"list_sessions", "shaped", "team.calc", "workflow.crew", "writer", "wrong"},
		"agent":   "Echo: from node",
		"session": "yes",
		"brief":   "Echo: about node",
		"shaped":  map[string]any{"title": "Echo: node"},
	}, got)

	// The runs are alice's.
	var sessions struct {
		Data []struct {
			UserID string `json:"user_id"`
		} `json:"data"`
	}
	ts.json(http.MethodGet, "/sessions", alice, "", http.StatusOK, &sessions)
	require.Len(t, sessions.Data, 3)
	for _, s := range sessions.Data {
		require.Equal(t, "alice", s.UserID)
	}
}

// TestMCPServerPausedRuns: a run paused on a tool call that needs approval
// answers with its run id and the held call; continue_run confirms it and
// the run completes, as POST …/continue does; cancel_run ends another
// paused run.
func TestMCPServerPausedRuns(t *testing.T) {
	t.Parallel()
	ts, _, up := startApprovals(t, "1h", refundCall)
	cs, err := connectMCP(t, ts, "", nil)
	require.NoError(t, err)

	paused := callTool(t, cs, "clerk", map[string]any{"message": "refund A1"})
	require.False(t, paused.IsError, toolText(t, paused))
	require.Equal(t, "PAUSED", paused.Meta["troupe/status"])
	runID := paused.Meta["troupe/run_id"].(string)
	require.Len(t, paused.Content, 2)
	require.Equal(t, "run "+runID+` is paused: it waits on a decision. Decide with continue_run {run_id: "`+runID+`", ...} (tools with confirmed for an agent or team, approved for a workflow) or in the approvals inbox; cancel_run ends it.`,
		paused.Content[0].(*sdk.TextContent).Text)
	var held struct {
		Status string       `json:"status"`
		Tools  []pausedTool `json:"tools"`
	}
	require.NoError(t, json.Unmarshal([]byte(paused.Content[1].(*sdk.TextContent).Text), &held))
	require.Equal(t, "PAUSED", held.Status)
	require.Len(t, held.Tools, 1)
	require.Equal(t, "call-1", held.Tools[0].ToolCallID)
	require.True(t, held.Tools[0].RequiresConfirmation)
	require.Equal(t, "Refund of 500 for A1", held.Tools[0].Reason)
	require.Empty(t, up.got())

	done := callTool(t, cs, "continue_run", map[string]any{"run_id": runID, "tools": []any{map[string]any{"tool_call_id": "call-1", "confirmed": true}}})
	require.False(t, done.IsError, toolText(t, done))
	require.Equal(t, "COMPLETED", done.StructuredContent.(map[string]any)["status"])
	require.Equal(t, "done", done.StructuredContent.(map[string]any)["content"])
	require.Len(t, up.got(), 1, "the confirmed refund ran")

	// The fake model pauses once per server: another one for the cancel.
	ts2, _, up2 := startApprovals(t, "1h", refundCall)
	cs2, err := connectMCP(t, ts2, "", nil)
	require.NoError(t, err)
	again := callTool(t, cs2, "clerk", map[string]any{"message": "refund A1 again"})
	require.Equal(t, "PAUSED", again.Meta["troupe/status"])
	cancelled := callTool(t, cs2, "cancel_run", map[string]any{"run_id": again.Meta["troupe/run_id"]})
	require.False(t, cancelled.IsError, toolText(t, cancelled))
	require.Equal(t, map[string]any{"run_id": again.Meta["troupe/run_id"], "status": "cancelled"}, cancelled.StructuredContent)
	require.Empty(t, up2.got(), "the cancelled refund never ran")
}

// TestMCPServerShutdown: a connected client's event stream does not hold
// the server's shutdown until its timeout: the MCP sessions close when
// shutdown begins.
func TestMCPServerShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withOptions(func(o *console.Options) { o.ShutdownTimeout = 30 * time.Second }))
	cs, err := connectMCP(t, ts, "", nil)
	require.NoError(t, err)
	require.Contains(t, toolNames(t, cs), "writer")
	start := time.Now()
	ts.stop()
	require.Less(t, time.Since(start), 15*time.Second, "the shutdown timeout is 30s")
}

// TestMCPServerShutdownDrains: a run a tool call started when shutdown
// begins finishes, and its answer reaches the client, before the sessions
// close.
func TestMCPServerShutdownDrains(t *testing.T) {
	t.Parallel()
	slow := fake.New(fake.Step{Content: "finished", Delay: 700 * time.Millisecond})
	ts := startServer(t, withProvider("anthropic", slow), withSpecs(historyModels+"kind: Agent\nname: slow\nmodel: scripted\n"))
	// The client may retry its event stream, which ends with the session
	// (the call's answer comes on its own request's stream).
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil).
		Connect(t.Context(), &sdk.StreamableClientTransport{Endpoint: ts.url + "/mcp"}, nil)
	require.NoError(t, err)
	defer cs.Close()
	type answer struct {
		res *sdk.CallToolResult
		err error
	}
	got := make(chan answer, 1)
	go func() {
		res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "slow", Arguments: map[string]any{"message": "take your time"}})
		got <- answer{res, err}
	}()
	require.Eventually(t, func() bool { return len(slow.Requests()) == 1 }, 5*time.Second, 5*time.Millisecond)
	ts.stop()
	a := <-got
	require.NoError(t, a.err)
	require.Equal(t, "finished", toolText(t, a.res))
	require.Equal(t, "COMPLETED", a.res.Meta["troupe/status"])
}

// BenchmarkMCPToolCall compares one agent run (the echo model) called as an
// MCP tool with the same run through POST /agents/{id}/runs (stream=false),
// one at a time: the difference is what MCP's framing costs.
func BenchmarkMCPToolCall(b *testing.B) {
	ts := startServer(b, withSpecs(mcpSpecs))
	b.Run("mcp", func(b *testing.B) {
		cs, err := connectMCP(b, ts, "", nil)
		require.NoError(b, err)
		for b.Loop() {
			res, err := cs.CallTool(b.Context(), &sdk.CallToolParams{Name: "echoer", Arguments: map[string]any{"message": "hi"}})
			if err != nil || res.IsError {
				b.Fatal(err, res)
			}
		}
	})
	b.Run("http", func(b *testing.B) {
		for b.Loop() {
			status, body, _ := ts.do(http.MethodPost, "/agents/echoer/runs", "", "application/json", `{"message":"hi","stream":false}`)
			if status != http.StatusOK {
				b.Fatal(status, body)
			}
		}
	})
}

// TestMCPServerConcurrentRuns: a key allowed one run at a time is refused a
// second run through /mcp while its first one (started through /mcp)
// holds the slot, and is let through once that run ends, as on the run
// routes.
func TestMCPServerConcurrentRuns(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withLimits(rateKeys(t, "{concurrent_runs: 1}"), auth.RateLimit{}, time.Now))
	cs, err := connectMCP(t, ts, rlAppKey, nil)
	require.NoError(t, err)
	first := make(chan *sdk.CallToolResult, 1)
	go func() {
		res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "writer", Arguments: map[string]any{"message": "please block"}})
		if err != nil {
			res = &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: err.Error()}}}
		}
		first <- res
	}()
	runID := waitBlockingRun(t, ts, "/agents/writer/runs", first, func(res *sdk.CallToolResult) string { return toolText(t, res) })

	refused := callTool(t, cs, "writer", map[string]any{"message": "hi"})
	require.True(t, refused.IsError)
	require.Equal(t, "concurrent runs limit reached for key:app: 1 of 1 runs are pending or running; retry when one ends", toolText(t, refused))
	// The API counts the MCP run too.
	status, body, _ := ts.do(http.MethodPost, "/agents/writer/runs", rlAppKey, "application/json", `{"message":"hi","stream":false}`)
	require.Equal(t, http.StatusTooManyRequests, status, body)

	cancelled := callTool(t, cs, "cancel_run", map[string]any{"run_id": runID})
	require.False(t, cancelled.IsError, toolText(t, cancelled))
	res := <-first
	require.True(t, res.IsError)
	require.Equal(t, "CANCELLED", res.Meta["troupe/status"])
	ok := callTool(t, cs, "writer", map[string]any{"message": "hi"})
	require.False(t, ok.IsError, toolText(t, ok))
}

// waitBlockingRun waits until the runs listed at path are one RUNNING run,
// started by a call that blocks until it ends, and returns its id; if the
// call ends first (on first), what it answered (as describe tells it) says
// why the run never showed.
func waitBlockingRun[T any](t *testing.T, ts *testServer, path string, first chan T, describe func(T) string) string {
	t.Helper()
	var runs []struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case res := <-first:
			t.Fatalf("the blocking call ended before its run was seen: %s", describe(res))
		default:
		}
		ts.json(http.MethodGet, path, rlAdminKey, "", http.StatusOK, &runs)
		if len(runs) == 1 && runs[0].Status == "RUNNING" {
			return runs[0].RunID
		}
		require.False(t, time.Now().After(deadline), "the run never showed as RUNNING: %+v", runs)
	}
}
