package console_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func multipartBody(t *testing.T, fields map[string]string) (string, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	require.NoError(t, w.Close())
	return b.String(), w.FormDataContentType()
}

type runJSON struct {
	RunID     string           `json:"run_id"`
	SessionID string           `json:"session_id"`
	AgentID   string           `json:"agent_id"`
	TeamID    string           `json:"team_id"`
	Content   string           `json:"content"`
	Status    string           `json:"status"`
	RunInput  string           `json:"run_input"`
	Tools     []map[string]any `json:"tools"`
	Messages  []map[string]any `json:"messages"`
	Metrics   map[string]any   `json:"metrics"`
}

type sessionJSON struct {
	SessionID   string `json:"session_id"`
	SessionName string `json:"session_name"`
	AgentID     string `json:"agent_id"`
	UserID      string `json:"user_id"`
}

type sessionPage struct {
	Data []sessionJSON `json:"data"`
	Meta struct {
		Page       int `json:"page"`
		Limit      int `json:"limit"`
		TotalPages int `json:"total_pages"`
		TotalCount int `json:"total_count"`
	} `json:"meta"`
}

func TestStreamedRunWithToolCallAndSessions(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	body, ct := multipartBody(t, map[string]string{"message": "calc: 6*7", "user_id": "u1"})
	frames, hdr := ts.stream("/agents/calc/runs", "", ct, body)
	require.Equal(t, []string{"RunStarted", "ToolCallStarted", "ToolCallCompleted", "RunContent", "RunCompleted"}, names(frames))
	started := frames[0].Data
	runID, sessionID := started["run_id"].(string), started["session_id"].(string)
	require.Equal(t, "calc", started["agent_id"])
	require.Equal(t, "test-model", started["model"])
	require.NotEmpty(t, started["created_at"])
	require.Equal(t, hdr.Get("X-Run-Id"), runID)
	tool := frames[2].Data["tool"].(map[string]any)
	require.Equal(t, "calculator", tool["tool_name"])
	require.Equal(t, map[string]any{"expression": "6*7"}, tool["tool_args"])
	require.Equal(t, "42", tool["result"])
	require.Equal(t, "The answer is 42.", frames[3].Data["content"])
	done := frames[len(frames)-1].Data
	require.Equal(t, "The answer is 42.", done["content"])
	require.EqualValues(t, 20, done["metrics"].(map[string]any)["input_tokens"])

	// The run was committed before RunCompleted reached us.
	var runs []runJSON
	ts.json(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 1)
	require.Equal(t, runID, runs[0].RunID)
	require.Equal(t, "COMPLETED", runs[0].Status)
	require.Equal(t, "The answer is 42.", runs[0].Content)
	require.Equal(t, "calc: 6*7", runs[0].RunInput)
	require.Len(t, runs[0].Tools, 1)
	require.Equal(t, "42", runs[0].Tools[0]["result"])

	// The second turn sends the history to the model.
	var second runJSON
	ts.json(http.MethodPost, "/agents/calc/runs", "", `{"message":"and now?","session_id":"`+sessionID+`","stream":false}`, http.StatusOK, &second)
	require.Equal(t, sessionID, second.SessionID)
	require.Equal(t, "system=v0|user=and now?|history=4", second.Content, "user, assistant tool call, tool result, answer")
	reqs := ts.v.requests()
	require.Equal(t, "calc: 6*7", text(reqs[2].Messages[1].Content))

	var page sessionPage
	ts.json(http.MethodGet, "/sessions?type=agent&component_id=calc", "", "", http.StatusOK, &page)
	require.Len(t, page.Data, 1)
	require.Equal(t, "calc: 6*7", page.Data[0].SessionName, "named after the first message")
	require.Equal(t, 1, page.Meta.TotalCount)
	require.Equal(t, 1, page.Meta.Page)

	var renamed sessionJSON
	ts.json(http.MethodPost, "/sessions/"+sessionID+"/rename", "", `{"session_name":"Arithmetic"}`, http.StatusOK, &renamed)
	require.Equal(t, "Arithmetic", renamed.SessionName)
	// Names are bounded in characters, not bytes: 200 three-byte
	// characters fit, 201 do not.
	long := strings.Repeat("日", 200)
	ts.json(http.MethodPost, "/sessions/"+sessionID+"/rename", "", `{"session_name":"`+long+`"}`, http.StatusOK, &renamed)
	require.Equal(t, long, renamed.SessionName)
	ts.json(http.MethodPost, "/sessions/"+sessionID+"/rename", "", `{"session_name":"`+long+`日"}`, http.StatusUnprocessableEntity, nil)
	ts.json(http.MethodPost, "/sessions/"+sessionID+"/rename", "", `{"session_name":"Arithmetic"}`, http.StatusOK, &renamed)
	var got sessionJSON
	ts.json(http.MethodGet, "/sessions/"+sessionID, "", "", http.StatusOK, &got)
	require.Equal(t, "Arithmetic", got.SessionName)
	require.Equal(t, "u1", got.UserID)

	ts.json(http.MethodDelete, "/sessions/"+sessionID, "", "", http.StatusNoContent, nil)
	ts.json(http.MethodGet, "/sessions/"+sessionID, "", "", http.StatusNotFound, nil)
	ts.json(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", http.StatusNotFound, nil)
	ts.json(http.MethodDelete, "/sessions/"+sessionID, "", "", http.StatusNotFound, nil)
}

func TestRunErrorsAndShapes(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var e map[string]any
	ts.json(http.MethodPost, "/agents/ghost/runs", "", `{"message":"hi"}`, http.StatusNotFound, &e)
	require.Equal(t, `agent "ghost" not found`, e["detail"])
	ts.json(http.MethodPost, "/agents/calc/runs", "", `{"stream":false}`, http.StatusUnprocessableEntity, &e)
	require.Equal(t, "message is required", e["detail"])
	ts.json(http.MethodPost, "/agents/calc/runs", "", `{not json`, http.StatusBadRequest, &e)
	status, _, _ := ts.do(http.MethodPost, "/agents/calc/runs", "", "text/plain", "hi")
	require.Equal(t, http.StatusUnsupportedMediaType, status)
	// A client may choose the id of a new session.
	var chosen runJSON
	ts.json(http.MethodPost, "/agents/calc/runs", "", `{"message":"x","session_id":"my-session-1","stream":false}`, http.StatusOK, &chosen)
	require.Equal(t, "my-session-1", chosen.SessionID)
	// ...but not reuse another agent's session.
	ts.json(http.MethodPost, "/agents/writer/runs", "", `{"message":"x","session_id":"my-session-1","stream":false}`, http.StatusNotFound, nil)
	ts.json(http.MethodPost, "/agents/calc/runs", "", `{"message":"`+strings.Repeat("x", 11<<20)+`"}`, http.StatusRequestEntityTooLarge, nil)

	// URL-encoded forms work too, and stream=false answers JSON.
	status, body, _ := ts.do(http.MethodPost, "/agents/writer/runs", "", "application/x-www-form-urlencoded", "message=hello&stream=false")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"content":"system=Write.|user=hello|history=0"`)

	var agents []map[string]any
	ts.json(http.MethodGet, "/agents", "", "", http.StatusOK, &agents)
	require.Len(t, agents, 3)
	require.Equal(t, "calc", agents[0]["id"])
	require.Equal(t, "Does arithmetic.", agents[0]["description"])
	require.NotEmpty(t, agents[0]["db_id"])
	require.Equal(t, map[string]any{"name": "vendor", "model": "test-model", "provider": "openai"}, agents[0]["model"])
	var team map[string]any
	ts.json(http.MethodGet, "/teams/crew", "", "", http.StatusOK, &team)
	require.Equal(t, "route", team["mode"])
	require.Equal(t, []any{map[string]any{"id": "writer", "name": "writer", "type": "agent"}}, team["members"])
	require.Equal(t, true, team["model"].(map[string]any)["demo"], "the echo model is flagged as the demo model")
	ts.json(http.MethodGet, "/health", "", "", http.StatusOK, &e)
	require.Equal(t, "ok", e["status"])
	var cfg map[string]any
	ts.json(http.MethodGet, "/config", "", "", http.StatusOK, &cfg)
	require.Len(t, cfg["agents"], 3)
	require.EqualValues(t, 1, cfg["reload"].(map[string]any)["generation"])
	ts.json(http.MethodGet, "/nope", "", "", http.StatusNotFound, nil)
}

func TestTeamRunStream(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	frames, _ := ts.stream("/teams/crew/runs", "", "application/json", `{"message":"draft it"}`)
	ev := names(frames)
	require.Equal(t, "TeamRunStarted", ev[0])
	require.Equal(t, "TeamRunCompleted", ev[len(ev)-1])
	require.Contains(t, ev, "RunStarted", "member events are interleaved with their own names")
	require.Contains(t, ev, "TeamToolCallStarted")
	last := frames[len(frames)-1].Data
	require.Equal(t, "crew", last["team_id"])
	require.Equal(t, "system=Write.|user=draft it|history=0", last["content"])
	var page sessionPage
	ts.json(http.MethodGet, "/sessions?type=team", "", "", http.StatusOK, &page)
	require.Len(t, page.Data, 1)
}

func TestCancelAndDisconnect(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	req, err := http.NewRequest(http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(`{"message":"please block"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	runID, sessionID := resp.Header.Get("X-Run-Id"), resp.Header.Get("X-Session-Id")
	ts.json(http.MethodPost, "/agents/calc/runs/"+runID+"/cancel", "", "", http.StatusNotFound, nil) // wrong agent
	ts.json(http.MethodPost, "/agents/writer/runs/"+runID+"/cancel", "", "", http.StatusOK, nil)
	frames := readFrames(t, resp.Body)
	resp.Body.Close()
	require.Equal(t, "RunCancelled", frames[len(frames)-1].Event)
	var runs []runJSON
	ts.json(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", http.StatusOK, &runs)
	require.Equal(t, "CANCELLED", runs[0].Status)

	// A client that goes away cancels its run, which is saved as cancelled.
	ctx, cancel := context.WithCancel(t.Context())
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(`{"message":"block again"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	sessionID = resp.Header.Get("X-Session-Id")
	buf := make([]byte, 64)
	_, _ = resp.Body.Read(buf) // the stream has started
	cancel()
	resp.Body.Close()
	require.Eventually(t, func() bool {
		status, body, _ := ts.do(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", "")
		return status == http.StatusOK && strings.Contains(body, `"status":"CANCELLED"`)
	}, 5*time.Second, 20*time.Millisecond)
}

func TestBrokenEditKeepsServingAndShowsInConfig(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	broken := strings.Replace(fixture, "instructions: v0", "instructions: v1\ntools: [no_such_tool]", 1)
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "specs.yaml"), []byte(broken), 0o644))
	var res map[string]any
	ts.json(http.MethodPost, "/config/reload", "", "", http.StatusOK, &res)
	var run runJSON
	ts.json(http.MethodPost, "/agents/calc/runs", "", `{"message":"hi","stream":false}`, http.StatusOK, &run)
	require.Equal(t, "system=v0|user=hi|history=0", run.Content, "the last good version keeps serving")
	var cfg struct {
		Objects []struct {
			Kind, Name, Status string
			Diagnostics        []struct{ Text string }
		}
	}
	ts.json(http.MethodGet, "/config", "", "", http.StatusOK, &cfg)
	found := false
	for _, o := range cfg.Objects {
		if o.Name == "calc" {
			found = true
			require.Equal(t, "stale", o.Status)
			require.Contains(t, o.Diagnostics[0].Text, `unknown tool "no_such_tool"`)
		}
	}
	require.True(t, found)
}
