package console_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDeleteSessionsSaysWhatWasDeleted checks DELETE /sessions against one
// user's and another user's ids: all deleted answers 204 (as AgentOS), some
// answers 200 naming what was deleted and what was not, none answers 404 as
// DELETE /sessions/{id} does for another user's session.
func TestDeleteSessionsSaysWhatWasDeleted(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	newSession := func(key string) string {
		var run runJSON
		ts.json(http.MethodPost, "/agents/writer/runs", key, `{"message":"hi","stream":false}`, http.StatusOK, &run)
		return run.SessionID
	}
	alice1, alice2, alice3, bob := newSession(aliceKey), newSession(aliceKey), newSession(aliceKey), newSession(bobKey)
	ids := func(ids ...string) string { return `{"session_ids":["` + strings.Join(ids, `","`) + `"]}` }

	// None of them bob's: 404, and alice's sessions stay.
	ts.json(http.MethodDelete, "/sessions", bobKey, ids(alice1, "no-such-session"), http.StatusNotFound, nil)
	ts.json(http.MethodGet, "/sessions/"+alice1, aliceKey, "", http.StatusOK, nil)

	// Some of them alice's: 200 with both lists; bob's session stays.
	var partial struct {
		Deleted  []string `json:"deleted"`
		NotFound []string `json:"not_found"`
	}
	ts.json(http.MethodDelete, "/sessions", aliceKey, ids(alice1, bob, alice1, "no-such-session"), http.StatusOK, &partial)
	require.Equal(t, []string{alice1}, partial.Deleted)
	require.Equal(t, []string{bob, "no-such-session"}, partial.NotFound)
	ts.json(http.MethodGet, "/sessions/"+alice1, aliceKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodGet, "/sessions/"+bob, bobKey, "", http.StatusOK, nil)

	// All of them alice's: 204, and they are gone.
	status, body, _ := ts.do(http.MethodDelete, "/sessions", aliceKey, "application/json", ids(alice2, alice3))
	require.Equal(t, http.StatusNoContent, status, body)
	require.Empty(t, body)
	var page sessionPage
	ts.json(http.MethodGet, "/sessions", aliceKey, "", http.StatusOK, &page)
	require.Empty(t, page.Data)
}

// TestOutputSchemaContentType checks that a run of an agent with an
// output_schema reports the schema's title as its content_type (AgentOS
// reports the output schema's class name), "json" without a title, and "str"
// for plain agents — in the run, the session's runs and the stream.
func TestOutputSchemaContentType(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(`kind: Agent
name: verdict
model: echo
output_schema:
  title: Verdict
  type: object
  properties: {title: {type: string}}
  required: [title]
---
kind: Agent
name: shape
model: echo
output_schema:
  type: object
  properties: {title: {type: string}}
`))
	tests := []struct{ agent, message, want string }{
		{agent: "verdict", message: `{\"title\":\"ok\"}`, want: "Verdict"},
		{agent: "shape", message: `{\"title\":\"ok\"}`, want: "json"},
		{agent: "helpdesk", message: "hello", want: "str"},
	}
	for _, tt := range tests {
		t.Run(tt.agent, func(t *testing.T) {
			var run struct {
				runJSON
				ContentType string `json:"content_type"`
			}
			ts.json(http.MethodPost, "/agents/"+tt.agent+"/runs", "", `{"message":"`+tt.message+`","stream":false}`, http.StatusOK, &run)
			require.Equal(t, "COMPLETED", run.Status, run.Content)
			require.Equal(t, tt.want, run.ContentType)

			var runs []map[string]any
			ts.json(http.MethodGet, "/sessions/"+run.SessionID+"/runs", "", "", http.StatusOK, &runs)
			require.Len(t, runs, 1)
			require.Equal(t, tt.want, runs[0]["content_type"])

			frames, _ := ts.stream("/agents/"+tt.agent+"/runs", "", "application/json", `{"message":"`+tt.message+`","stream":true}`)
			i := slices.IndexFunc(frames, func(f frame) bool { return f.Event == "RunCompleted" })
			require.GreaterOrEqual(t, i, 0, names(frames))
			require.Equal(t, tt.want, frames[i].Data["content_type"])
		})
	}
}

// TestChatCompletionsWithoutSessionHeader checks what the docs promise: a
// call without X-Session-Id starts a session of its own, listed in /sessions
// and named by the answer's X-Session-Id, which continues it when sent back.
func TestChatCompletionsWithoutSessionHeader(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	chat := `{"model":"helpdesk","messages":[{"role":"user","content":"hi"}]}`
	status, body, h1 := ts.do(http.MethodPost, "/v1/chat/completions", aliceKey, "application/json", chat)
	require.Equal(t, http.StatusOK, status, body)
	status, body, h2 := ts.do(http.MethodPost, "/v1/chat/completions", aliceKey, "application/json", chat)
	require.Equal(t, http.StatusOK, status, body)
	first, second := h1.Get("X-Session-Id"), h2.Get("X-Session-Id")
	require.NotEmpty(t, first)
	require.NotEqual(t, first, second, "each call without X-Session-Id starts its own session")

	var page sessionPage
	ts.json(http.MethodGet, "/sessions", aliceKey, "", http.StatusOK, &page)
	listed := []string{}
	for _, s := range page.Data {
		listed = append(listed, s.SessionID)
	}
	require.ElementsMatch(t, []string{first, second}, listed)

	// Sending the header back continues the session rather than adding one.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/v1/chat/completions", strings.NewReader(chat))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+aliceKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Session-Id", first)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, first, resp.Header.Get("X-Session-Id"))
	var runs []map[string]any
	ts.json(http.MethodGet, "/sessions/"+first+"/runs", aliceKey, "", http.StatusOK, &runs)
	require.Len(t, runs, 2)
	ts.json(http.MethodGet, "/sessions", aliceKey, "", http.StatusOK, &page)
	require.Len(t, page.Data, 2)

	// The API docs say so.
	status, body, _ = ts.do(http.MethodGet, "/openapi.json", aliceKey, "", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "without X-Session-Id each call starts a new session")
}

// TestKnowledgeAPIShapes checks /knowledge/config in snake_case, search's
// meta.limit as the limit asked for, a document's size as AgentOS's string
// of bytes, and that a renamed document shows its new name in search hits
// and in a run's references.
func TestKnowledgeAPIShapes(t *testing.T) {
	t.Parallel()
	ts := startServer(t)

	var cfg map[string]any
	status, body, _ := ts.do(http.MethodGet, "/knowledge/config", "", "", "")
	require.Equal(t, http.StatusOK, status, body)
	require.NotContains(t, body, `"Strategy"`)
	require.NotContains(t, body, `"Size"`)
	require.NoError(t, json.Unmarshal([]byte(body), &cfg))
	bases := cfg["knowledge_bases"].([]any)
	require.Len(t, bases, 1)
	require.Equal(t, map[string]any{"strategy": "recursive", "size": 120.0, "overlap": 20.0}, bases[0].(map[string]any)["chunking"])

	status, out := upload(t, ts, "", nil, filepath.Join("..", "engine", "knowledge", "reader", "testdata", "notes.txt"))
	require.Equal(t, http.StatusAccepted, status, out)
	id := out["id"].(string)
	waitCompleted(t, ts, id)
	var doc map[string]any
	ts.json(http.MethodGet, "/knowledge/content/"+id, "", "", http.StatusOK, &doc)
	info, err := os.Stat(filepath.Join("..", "engine", "knowledge", "reader", "testdata", "notes.txt"))
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(info.Size(), 10), doc["size"], "size is the byte count as a string, as AgentOS answers")

	for _, tt := range []struct {
		name, body string
		limit      float64
	}{
		{name: "asked", body: `{"query":"knowledge base feature","knowledge_id":"docs","max_results":7}`, limit: 7},
		{name: "default top_k", body: `{"query":"knowledge base feature","knowledge_id":"docs"}`, limit: 5},
	} {
		var res struct {
			Data []map[string]any `json:"data"`
			Meta map[string]any   `json:"meta"`
		}
		ts.json(http.MethodPost, "/knowledge/search", "", tt.body, http.StatusOK, &res)
		require.NotEmpty(t, res.Data, tt.name)
		require.Less(t, len(res.Data), int(tt.limit), "%s: fewer hits than the limit, so the two cannot be confused", tt.name)
		require.Equal(t, tt.limit, res.Meta["limit"], tt.name)
		require.EqualValues(t, len(res.Data), res.Meta["total_count"], tt.name)
	}

	ts.json(http.MethodPatch, "/knowledge/content/"+id, "", `{"name":"meeting-notes.txt"}`, http.StatusOK, &out)
	hits := search(t, ts, "Ship the knowledge base feature in April", "hybrid")
	require.NotEmpty(t, hits)
	require.Equal(t, id, hits[0]["content_id"])
	require.Equal(t, "meeting-notes.txt", hits[0]["name"])
	frames, _ := ts.stream("/agents/helpdesk/runs", "", "application/json", `{"message":"When does the knowledge base feature ship?"}`)
	done := frames[len(frames)-1]
	require.Equal(t, "RunCompleted", done.Event)
	refs := done.Data["references"].([]any)
	require.NotEmpty(t, refs)
	require.Equal(t, "meeting-notes.txt", refs[0].(map[string]any)["document_name"])
}

// TestTraceReadableWhenRunEnds checks that a run's trace answers 200, with
// its root span, as soon as the run's final event or answer has arrived,
// although the recorder has written nothing yet (it flushes hourly here):
// reading the trace has the recorder write it, after which it is listed too.
func TestTraceReadableWhenRunEnds(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withFlushInterval(time.Hour))
	for _, stream := range []bool{true, false} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			_, _, before := ts.recorder.Stats()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/agents/helpdesk/runs", strings.NewReader(fmt.Sprintf(`{"message":"hello","stream":%v}`, stream)))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body) // to the final event
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			traceID := resp.Header.Get("X-Trace-Id")
			require.Len(t, traceID, 32)

			_, _, written := ts.recorder.Stats()
			require.Equal(t, before, written, "nothing written yet: the trace must come from the recorder")
			var got struct {
				Trace map[string]any `json:"trace"`
				Tree  []traceNode    `json:"tree"`
			}
			ts.json(http.MethodGet, "/traces/"+traceID, "", "", http.StatusOK, &got)
			require.Equal(t, traceID, got.Trace["trace_id"])
			require.Len(t, got.Tree, 1)
			require.Equal(t, "agent.run helpdesk", got.Tree[0].Name)
			require.Equal(t, "OK", got.Trace["status"])

			// Reading it wrote it: it is listed from then on.
			_, _, written = ts.recorder.Stats()
			require.Greater(t, written, before)
			var list struct {
				Data []map[string]any `json:"data"`
			}
			ts.json(http.MethodGet, "/traces?agent_id=helpdesk&limit=100", "", "", http.StatusOK, &list)
			listed := []any{}
			for _, tr := range list.Data {
				listed = append(listed, tr["trace_id"])
			}
			require.Contains(t, listed, traceID)
		})
	}
}

// TestDocsPage checks /docs: examples name the address the page was read
// at, inline code is rendered (no literal backticks), a browser signed in to
// the console reads it with its cookie and one signed out is sent to sign
// in, while API calls keep their 401; and the console links to it.
func TestDocsPage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	get := func(headers map[string]string) (*http.Response, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.url+"/docs", nil)
		require.NoError(t, err)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}
	navigate := map[string]string{"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Accept": "text/html"}
	withCookie := func(h map[string]string, key string) map[string]string {
		out := map[string]string{"Cookie": "troupe_key=" + key}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name     string
		headers  map[string]string
		status   int
		location string
	}{
		{name: "api key", headers: map[string]string{"Authorization": "Bearer " + readerKey}, status: http.StatusOK},
		{name: "signed-in browser", headers: withCookie(navigate, readerKey), status: http.StatusOK},
		{name: "older browser", headers: withCookie(map[string]string{"Accept": "text/html,application/xhtml+xml"}, readerKey), status: http.StatusOK},
		{name: "signed-out browser", headers: navigate, status: http.StatusSeeOther, location: "/ui/login?next=%2Fdocs"},
		{name: "stale cookie", headers: withCookie(navigate, "sk-gone-0123456789abcdef"), status: http.StatusSeeOther, location: "/ui/login?next=%2Fdocs"},
		{name: "script fetch with cookie", headers: withCookie(map[string]string{"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"}, readerKey), status: http.StatusUnauthorized},
		{name: "no key", headers: nil, status: http.StatusUnauthorized},
		{name: "bad key header beats cookie", headers: withCookie(map[string]string{"Authorization": "Bearer nope-0123456789abcdef"}, readerKey), status: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(tt.headers)
			require.Equal(t, tt.status, resp.StatusCode, body)
			require.Equal(t, tt.location, resp.Header.Get("Location"))
			if tt.status == http.StatusUnauthorized {
				require.Contains(t, resp.Header.Get("Content-Type"), "application/json")
			}
		})
	}

	_, page := get(map[string]string{"Authorization": "Bearer " + readerKey})
	require.Contains(t, page, "curl -N -X POST "+ts.url+"/agents/calc/runs")
	require.NotContains(t, page, "7777")
	require.NotContains(t, page, "`", "inline code is rendered, not shown as backticks")
	require.Contains(t, page, "<code>last_event_index</code>")
	require.Contains(t, page, "<code>event: Name</code>")
	_, page = get(map[string]string{"Authorization": "Bearer " + readerKey, "X-Forwarded-Proto": "https"})
	require.Contains(t, page, "curl -N -X POST https://"+strings.TrimPrefix(ts.url, "http://")+"/agents/calc/runs")

	// The console links to it.
	resp, body := ts.page("GET", "/ui/agents", readerKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "/docs", doc(t, body).Find("[data-testid=api-docs]").AttrOr("href", ""))
}

// TestHealthShapeIsDocumented checks that the README's /health row shows
// every field /health answers, so the documented shape is the real one.
func TestHealthShapeIsDocumented(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var health map[string]any
	ts.json(http.MethodGet, "/health", "", "", http.StatusOK, &health)
	require.Equal(t, "ok", health["status"])
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	var row string
	for line := range strings.SplitSeq(string(readme), "\n") {
		if strings.HasPrefix(line, "| `GET /health` |") {
			row = line
		}
	}
	require.NotEmpty(t, row, "the README has no GET /health row")
	for field := range health {
		require.Contains(t, row, `"`+field+`"`, "the README's /health row does not show %q", field)
	}
	_, err = time.Parse(time.RFC3339, fmt.Sprint(health["instantiated_at"]))
	require.NoError(t, err, "instantiated_at is an RFC 3339 time, as documented")
}
