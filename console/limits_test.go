package console_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/console"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// TestSessionRunsArePaged seeds a 20,000-run session and checks that
// GET /sessions/{id}/runs answers one bounded page, the latest turns by
// default, in the AgentOS array shape, with headers leading to older turns.
func TestSessionRunsArePaged(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	const total = 20_000
	start := time.Now().UTC().Add(-time.Hour)
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(32)
	for i := range total {
		g.Go(func() error {
			s := &store.Session{ID: "long", Type: "agent", ComponentID: "writer"}
			created := start.Add(time.Duration(i) * time.Millisecond)
			r := &store.Run{ID: fmt.Sprintf("r%05d", i), Input: fmt.Sprintf("turn %d", i), CreatedAt: created}
			if err := ts.db.StartRun(ctx, s, r); err != nil {
				return err
			}
			r.Status, r.Content, r.UpdatedAt = event.StatusCompleted, "done", created.Add(time.Millisecond/2)
			return ts.db.FinishRun(ctx, r)
		})
	}
	require.NoError(t, g.Wait())

	var runs []map[string]any
	status, body, h := ts.do(http.MethodGet, "/sessions/long/runs", "", "", "")
	require.Equal(t, http.StatusOK, status, body)
	require.Less(t, len(body), 200_000, "one page, not the whole session")
	ts.json(http.MethodGet, "/sessions/long/runs", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 100)
	require.Equal(t, "r19900", runs[0]["run_id"], "the latest turns, oldest first")
	require.Equal(t, "r19999", runs[99]["run_id"])
	require.Equal(t, "20000", h.Get("X-Total-Count"))
	require.Equal(t, "200", h.Get("X-Total-Pages"))
	require.Equal(t, `</sessions/long/runs?limit=100&page=2>; rel="next"`, h.Get("Link"))

	ts.json(http.MethodGet, "/sessions/long/runs?limit=500&page=40", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 500)
	require.Equal(t, "r00000", runs[0]["run_id"], "the last page holds the oldest turns")
	_, _, h = ts.do(http.MethodGet, "/sessions/long/runs?limit=500&page=40", "", "", "")
	require.Equal(t, `</sessions/long/runs?limit=500&page=39>; rel="prev"`, h.Get("Link"))

	for _, q := range []string{"limit=0", "limit=501", "limit=x", "page=0", "page=-1"} {
		status, body, _ := ts.do(http.MethodGet, "/sessions/long/runs?"+q, "", "", "")
		require.Equal(t, http.StatusUnprocessableEntity, status, q)
		require.True(t, strings.Contains(body, "limit must be") || strings.Contains(body, "page must be"), body)
	}
	ts.json(http.MethodGet, "/sessions/nope/runs", "", "", http.StatusNotFound, nil)
}

// TestOpenAPIIsBuiltOncePerSnapshot checks that /openapi.json and /docs are
// built once per reload, not per request, and that a folder of many agents
// documents a bounded number of them one by one.
func TestOpenAPIIsBuiltOncePerSnapshot(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	for range 5 {
		ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, nil)
		status, _, _ := ts.do(http.MethodGet, "/docs", "", "", "")
		require.Equal(t, http.StatusOK, status)
	}
	require.Equal(t, 1, console.APIDocsBuilds(ts.srv))

	var many strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&many, "---\nkind: Agent\nname: bulk-%04d\nmodel: echo\n", i)
	}
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "bulk.yaml"), []byte(many.String()), 0o644))
	ts.json(http.MethodPost, "/config/reload", "", "", http.StatusOK, nil)
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	for range 5 {
		ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	}
	require.Equal(t, 2, console.APIDocsBuilds(ts.srv), "one build for the new snapshot")
	perAgent := 0
	for p := range doc.Paths {
		if strings.HasPrefix(p, "/agents/") && strings.HasSuffix(p, "/runs") && !strings.Contains(p, "{") {
			perAgent++
		}
	}
	require.Equal(t, 1000, perAgent)
	require.Contains(t, doc.Paths, "/agents/{agent_id}/runs", "the others share the generic path")
}

// TestMalformedInputIs422 sends the malformed requests of issue #13 (and
// their neighbours) and checks that each gets a 422 with the rule, never a
// 500 or a silent success.
func TestMalformedInputIs422(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var run struct {
		SessionID string `json:"session_id"`
	}
	ts.json(http.MethodPost, "/agents/writer/runs", "", `{"message":"hi","stream":false}`, http.StatusOK, &run)
	long := strings.Repeat("a", 129)
	tests := []struct {
		name, method, path, contentType, body, want string
	}{
		{"knowledge sort_by", "GET", "/knowledge/content?sort_by=bogus", "", "", "sort_by must be created_at, updated_at, name or size"},
		{"knowledge sort_order", "GET", "/knowledge/content?sort_order=up", "", "", "sort_order must be asc or desc"},
		{"sessions sort_by", "GET", "/sessions?sort_by=bogus", "", "", "sort_by must be"},
		{"sessions sort_order", "GET", "/sessions?sort_order=up", "", "", "sort_order must be asc or desc"},
		{"rename to NUL", "POST", "/sessions/" + run.SessionID + "/rename", "application/json", `{"session_name":"\u0000"}`, "without control characters"},
		{"rename with NUL inside", "POST", "/sessions/" + run.SessionID + "/rename", "application/json", `{"session_name":"a\u0000b"}`, "without control characters"},
		{"rename form NUL", "POST", "/sessions/" + run.SessionID + "/rename", "application/x-www-form-urlencoded", "session_name=%00", "without control characters"},
		{"message with NUL", "POST", "/agents/writer/runs", "application/json", `{"message":"a\u0000b","stream":false}`, "NUL byte"},
		{"session id too long", "POST", "/agents/writer/runs", "application/json", `{"message":"hi","stream":false,"session_id":"` + long + `"}`, "session_id must be 1 to 128 characters"},
		{"session id with slash", "POST", "/agents/writer/runs", "application/json", `{"message":"hi","stream":false,"session_id":"a/b"}`, "session_id must be"},
		{"session id dot dot", "POST", "/agents/writer/runs", "application/x-www-form-urlencoded", "message=hi&stream=false&session_id=..", "session_id must be"},
		{"metrics date", "GET", "/metrics?ending_date=tomorrow", "", "", "ending_date must be a date"},
		{"metrics reversed", "GET", "/metrics?starting_date=2026-02-01&ending_date=2026-01-01", "", "", "starting_date must not be after ending_date"},
	}
	for _, tt := range tests {
		status, body, _ := ts.do(tt.method, tt.path, "", tt.contentType, tt.body)
		require.Equal(t, http.StatusUnprocessableEntity, status, "%s: %s", tt.name, body)
		require.Contains(t, body, tt.want, tt.name)
	}
	// The OpenAI route takes the session id from a header.
	for _, id := range []string{long, "a/b", "with space"} {
		req, err := http.NewRequest(http.MethodPost, ts.url+"/v1/chat/completions", strings.NewReader(`{"model":"writer","messages":[{"role":"user","content":"hi"}]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Session-Id", id)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, id)
		require.Empty(t, resp.Header.Get("X-Session-Id"), "an invalid id is not echoed")
	}
	// Valid client-chosen ids still work, a UUID among them.
	for _, id := range []string{"0190d7a4-8f3b-7c2e-9a1b-3c4d5e6f7a8b", "user:42.chat_1"} {
		ts.json(http.MethodPost, "/agents/writer/runs", "", `{"message":"hi","stream":false,"session_id":"`+id+`"}`, http.StatusOK, nil)
		ts.json(http.MethodGet, "/sessions/"+id, "", "", http.StatusOK, nil)
	}
}

// TestConsolePagesBoundWhatTheyRender stores a 9 MiB message and checks the
// session page and the agent's chat page show a bounded part of it.
func TestConsolePagesBoundWhatTheyRender(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	big := strings.Repeat("word ", 9<<20/5)
	var run struct {
		SessionID string `json:"session_id"`
	}
	ts.json(http.MethodPost, "/agents/helpdesk/runs", "", `{"message":"`+big+`","stream":false}`, http.StatusOK, &run)
	for _, path := range []string{"/ui/sessions/" + run.SessionID, "/ui/agents/helpdesk?session=" + run.SessionID} {
		status, body, _ := ts.do(http.MethodGet, path, "", "", "")
		require.Equal(t, http.StatusOK, status, path)
		require.Less(t, len(body), 4*console.MaxShownText+100_000, path)
		require.Contains(t, body, "bytes more; see the API", path)
	}
}
