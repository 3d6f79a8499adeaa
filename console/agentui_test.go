package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// Agno's Agent UI, as a user drives it against troupe serve with a model
// that streams slowly: these tests replay what it sends and reads.

// heldProvider holds every model call that answers a tool result until
// release is closed, so a run stays in flight, with its tool call done and
// its answer not yet streamed, for as long as a test needs.
type heldProvider struct {
	p       model.Provider
	release chan struct{}
}

func (h *heldProvider) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == model.RoleTool {
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.p.Generate(ctx, req, onDelta)
}

// liveStream is a streamed run read frame by frame as it arrives.
type liveStream struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

func (ts *testServer) openStream(t *testing.T, path, body string) *liveStream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s %s", path, resp.Status, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &liveStream{t: t, resp: resp, sc: sc}
}

// until reads frames up to and including the first named event.
func (s *liveStream) until(event string) []frame {
	s.t.Helper()
	var out []frame
	for s.sc.Scan() {
		line, ok := strings.CutPrefix(s.sc.Text(), "data: ")
		if !ok {
			continue
		}
		var f frame
		require.NoError(s.t, json.Unmarshal([]byte(line), &f.Data))
		f.Event, _ = f.Data["event"].(string)
		out = append(out, f)
		if f.Event == event {
			return out
		}
	}
	s.t.Fatalf("the stream ended before %s: %v", event, names(out))
	return nil
}

func framesNamed(fs []frame, event string) []frame {
	var out []frame
	for _, f := range fs {
		if f.Event == event {
			out = append(out, f)
		}
	}
	return out
}

const slowCalc = `kind: Model
name: scripted
provider: anthropic
model: scripted
api_key: sk-test
---
kind: Agent
name: slowcalc
description: Does arithmetic, slowly.
model: scripted
tools: [calculator]
`

// TestAgentUIFirstTurnKeepsItsToolCalls: Agent UI reads GET
// /sessions/{id}/runs as soon as RunStarted names a new session and
// replaces the live chat with the answer. Until the session's first run has
// finished, both session routes answer 404 as AgentOS does (it stores the
// session then), so the tool call streaming in stays on screen; and
// RunCompleted lists every tool call of the run, so a client can restore
// them anyway.
func TestAgentUIFirstTurnKeepsItsToolCalls(t *testing.T) {
	t.Parallel()
	script := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{{ID: "call_6x7", Name: "calculator", Arguments: `{"expression":"6*7"}`}}},
		fake.Step{Deltas: []string{"6 times 7 ", "is 42."}},
		fake.Step{ToolCalls: []model.ToolCall{{ID: "call_2p2", Name: "calculator", Arguments: `{"expression":"2+2"}`}}},
		fake.Step{Deltas: []string{"4."}},
	)
	held := &heldProvider{p: script, release: make(chan struct{})}
	ts := startServer(t, withProvider("anthropic", held), withSpecs(slowCalc))

	first := ts.openStream(t, "/agents/slowcalc/runs", `{"message":"what is 6*7?"}`)
	streamed := first.until("ToolCallCompleted")
	sessionID := streamed[0].Data["session_id"].(string)
	require.Equal(t, "RunStarted", streamed[0].Event)
	for _, path := range []string{"/sessions/" + sessionID + "/runs", "/sessions/" + sessionID, "/sessions/" + sessionID + "/runs?page=2"} {
		status, body, _ := ts.do(http.MethodGet, path, "", "", "")
		require.Equal(t, http.StatusNotFound, status, "GET %s while the first run streams: %s", path, body)
		require.JSONEq(t, `{"detail":"session not found"}`, body)
	}

	close(held.release)
	streamed = append(streamed, first.until("RunCompleted")...)
	toolDone := framesNamed(streamed, "ToolCallCompleted")
	require.Len(t, toolDone, 1)
	tool := toolDone[0].Data["tool"].(map[string]any)
	require.Equal(t, "calculator", tool["tool_name"])
	require.Equal(t, "42", tool["result"])
	completed := streamed[len(streamed)-1].Data
	require.Equal(t, []any{tool}, completed["tools"], "RunCompleted lists the run's tool calls as the ToolCall events showed them")
	require.Equal(t, "6 times 7 is 42.", completed["content"])

	// Stored, the session is there, with the run and its tool call.
	var runs []map[string]any
	ts.json(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 1)
	require.Equal(t, "COMPLETED", runs[0]["status"])
	require.Equal(t, []any{tool}, runs[0]["tools"])
	ts.json(http.MethodGet, "/sessions/"+sessionID, "", "", http.StatusOK, nil)

	// A later turn of a stored session does not hide the session.
	second := ts.openStream(t, "/agents/slowcalc/runs", `{"message":"and 2+2?","session_id":"`+sessionID+`"}`)
	second.until("RunCompleted")
	ts.json(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 2)
	require.Equal(t, "4.", runs[1]["content"])
}

// TestTeamRunCompletedListsTools: TeamRunCompleted carries the team's own
// tool calls (the route to a member), as the TeamToolCall events showed.
func TestTeamRunCompletedListsTools(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	frames, _ := ts.stream("/teams/crew/runs", "", "application/json", `{"message":"draft it"}`)
	var tools []any
	for _, f := range framesNamed(frames, "TeamToolCallCompleted") {
		tools = append(tools, f.Data["tool"])
	}
	require.NotEmpty(t, tools)
	last := frames[len(frames)-1]
	require.Equal(t, "TeamRunCompleted", last.Event)
	require.Equal(t, tools, last.Data["tools"])
}

// TestAgentUIReferences: Agent UI shows the knowledge a run used from
// extra_data.references, grouped by the query that found it, with each
// passage's text and its position in the document, on RunCompleted and on
// the stored run. The top-level references stay as they were.
func TestAgentUIReferences(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	status, out := upload(t, ts, "", nil, filepath.Join("..", "engine", "knowledge", "reader", "testdata", "notes.txt"))
	require.Equal(t, http.StatusAccepted, status, out)
	waitCompleted(t, ts, out["id"].(string))

	const question = "When does the knowledge base feature ship?"
	start := time.Now()
	frames, _ := ts.stream("/agents/helpdesk/runs", "", "application/json", `{"message":"`+question+`"}`)
	took := time.Since(start)
	done := frames[len(frames)-1]
	require.Equal(t, "RunCompleted", done.Event)

	extra := done.Data["extra_data"].(map[string]any)
	groups := extra["references"].([]any)
	require.Len(t, groups, 1, "one search, one group")
	group := groups[0].(map[string]any)
	require.Equal(t, question, group["query"])
	require.Greater(t, group["time"], 0.0)
	require.Less(t, group["time"], took.Seconds())

	top := done.Data["references"].([]any)
	passages := group["references"].([]any)
	require.Len(t, passages, len(top))
	var shipping bool
	for i, p := range passages {
		ref, passage := top[i].(map[string]any), p.(map[string]any)
		content := passage["content"].(string)
		shipping = shipping || strings.Contains(content, "Ship the knowledge base feature in April.")
		require.Equal(t, map[string]any{
			"name":    "notes.txt",
			"content": ref["content"],
			"meta_data": map[string]any{
				"chunk":        ref["chunk"],
				"chunk_size":   float64(utf8.RuneCountInString(content)),
				"document_id":  out["id"],
				"knowledge_id": "docs",
				"score":        ref["score"],
			},
		}, passage)
		require.NotEmpty(t, content)
		require.GreaterOrEqual(t, ref["chunk"], 1.0, "chunks count from 1")
		require.Equal(t, question, ref["query"])
	}
	require.True(t, shipping, "the passage that answers is among the references: %v", passages)

	var runs []map[string]any
	ts.json(http.MethodGet, "/sessions/"+done.Data["session_id"].(string)+"/runs", "", "", http.StatusOK, &runs)
	require.Equal(t, extra, runs[0]["extra_data"], "the stored run has the same extra_data")
	require.Equal(t, top, runs[0]["references"])
}
