package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console"
	"github.com/troupehq/troupe/telemetry"
)

// page fetches a console page with an optional key cookie and extra headers.
func (ts *testServer) page(method, path, cookie string, form url.Values, headers ...string) (*http.Response, string) {
	ts.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, ts.url+path, body)
	require.NoError(ts.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "troupe_key", Value: cookie})
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(ts.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(ts.t, err)
	return resp, string(b)
}

func doc(t *testing.T, html string) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(html))
	require.NoError(t, err)
	return d
}

func TestConsoleSignInCookieAndCSRF(t *testing.T) {
	ts := startServer(t, withKeys(keys))

	resp, _ := ts.page("GET", "/ui/sessions?q=x", "", nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "no key: to the sign-in page")
	require.Equal(t, "/ui/login?next="+url.QueryEscape("/ui/sessions?q=x"), resp.Header.Get("Location"))

	resp, body := ts.page("POST", "/ui/login", "", url.Values{"key": {"sk-nope-0123456789abcdef"}, "next": {"/ui/sessions"}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, body, "That key is not valid.")
	require.Empty(t, resp.Cookies())

	resp, _ = ts.page("POST", "/ui/login", "", url.Values{"key": {adminKey}, "next": {"//evil.example/x"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/", resp.Header.Get("Location"), "sign-in never redirects off the site")
	c := resp.Cookies()[0]
	require.Equal(t, "troupe_key", c.Name)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.Equal(t, adminKey, c.Value)

	resp, body = ts.page("GET", "/", adminKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, doc(t, body).Find("[data-testid=key-name]").Text(), "#4")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	// The console answers no CORS, even to an origin the API allows.
	const devOrigin = "http://localhost:3000"
	resp, _ = ts.page("GET", "/health", "", nil, "Origin", devOrigin)
	require.Equal(t, devOrigin, resp.Header.Get("Access-Control-Allow-Origin"), "the API allows this origin")
	resp, _ = ts.page("GET", "/", adminKey, nil, "Origin", devOrigin)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "the console answers no CORS")
	resp, _ = ts.page("OPTIONS", "/ui/sessions", "", nil, "Origin", devOrigin, "Access-Control-Request-Method", "POST")
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "nor preflights")

	// The cookie is for the console only: the API still wants a header.
	resp, _ = ts.page("GET", "/sessions", adminKey, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Cross-origin writes are refused, whatever the cookie.
	resp, _ = ts.page("POST", "/ui/config/reload", adminKey, url.Values{}, "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = ts.page("POST", "/ui/config/reload", adminKey, url.Values{}, "Origin", "http://evil.example")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = ts.page("POST", "/ui/login", "", url.Values{"key": {adminKey}}, "Sec-Fetch-Site", "cross-site")
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "no login CSRF either")
	resp, _ = ts.page("POST", "/ui/config/reload", adminKey, url.Values{}, "Sec-Fetch-Site", "same-origin", "Origin", ts.url)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Scopes: a read-only key sees agents but not sessions, and cannot reload.
	resp, body = ts.page("GET", "/ui/sessions", readerKey, nil, "Accept", "text/html")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "sessions:read")
	resp, body = ts.page("GET", "/ui/agents/helpdesk", readerKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 0, doc(t, body).Find("[data-testid=chat-form]").Length(), "no chat without agents:run")
	resp, _ = ts.page("POST", "/ui/config/reload", readerKey, url.Values{})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, body = ts.page("GET", "/ui/config", readerKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 0, doc(t, body).Find("[data-testid=reload]").Length())

	// A user-bound key sees only its user's sessions.
	var bob struct {
		RunID     string `json:"run_id"`
		SessionID string `json:"session_id"`
	}
	ts.json("POST", "/agents/helpdesk/runs", adminKey, `{"message": "bob's question", "user_id": "bob", "stream": false}`, 200, &bob)
	ts.json("POST", "/agents/helpdesk/runs", aliceKey, `{"message": "alice's question", "stream": false}`, 200, nil)
	_, body = ts.page("GET", "/ui/sessions", aliceKey, nil)
	require.Equal(t, []string{"alice's question"}, texts(doc(t, body).Find("[data-testid=session-link]")))
	_, body = ts.page("GET", "/", aliceKey, nil)
	require.Equal(t, 1, doc(t, body).Find("[data-testid=run-row]").Length())
	_, body = ts.page("GET", "/", adminKey, nil)
	require.Equal(t, 2, doc(t, body).Find("[data-testid=run-row]").Length())

	// Nor can it read, change or continue another user's session, or read
	// their traces, through any console page or the trace API.
	var traces struct {
		Data []struct {
			TraceID string `json:"trace_id"`
		} `json:"data"`
	}
	require.Eventually(t, func() bool {
		ts.json("GET", "/traces?user_id=bob", adminKey, "", 200, &traces)
		return len(traces.Data) == 1
	}, 5*time.Second, 20*time.Millisecond, "bob's trace is written")
	bobTrace := traces.Data[0].TraceID
	for _, r := range []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/ui/sessions/" + bob.SessionID, nil},
		{"GET", "/ui/agents/helpdesk?session=" + bob.SessionID, nil},
		{"POST", "/ui/sessions/" + bob.SessionID + "/rename", url.Values{"name": {"alice was here"}}},
		{"POST", "/ui/sessions/" + bob.SessionID + "/delete", url.Values{}},
		{"POST", "/ui/agents/helpdesk/chat", url.Values{"message": {"hi"}, "session_id": {bob.SessionID}}},
		{"GET", "/ui/runs/" + bob.RunID + "/trace", nil},
		{"GET", "/ui/traces/" + bobTrace, nil},
	} {
		resp, body := ts.page(r.method, r.path, aliceKey, r.form)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s %s: %s", r.method, r.path, body)
	}
	ts.json("GET", "/traces/"+bobTrace, aliceKey, "", 404, nil)
	ts.json("GET", "/traces", aliceKey, "", 200, &traces)
	for _, tr := range traces.Data {
		require.NotEqual(t, bobTrace, tr.TraceID)
	}
	_, body = ts.page("GET", "/ui/traces", aliceKey, nil)
	require.NotContains(t, body, bobTrace)
	// A cross-site form post with the admin's cookie changes nothing either.
	resp, _ = ts.page("POST", "/ui/sessions/"+bob.SessionID+"/rename", adminKey, url.Values{"name": {"forged"}}, "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	var sess struct {
		SessionName string `json:"session_name"`
	}
	ts.json("GET", "/sessions/"+bob.SessionID, adminKey, "", 200, &sess)
	require.NotEqual(t, "forged", sess.SessionName)
	require.NotEqual(t, "alice was here", sess.SessionName)

	resp, _ = ts.page("POST", "/ui/logout", adminKey, url.Values{})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, -1, resp.Cookies()[0].MaxAge)
}

func texts(s *goquery.Selection) []string {
	var out []string
	s.Each(func(_ int, e *goquery.Selection) { out = append(out, strings.TrimSpace(e.Text())) })
	return out
}

func TestConsoleFriendlyErrors(t *testing.T) {
	ts := startServer(t)
	for path, want := range map[string]string{
		"/ui/nope":               "Page not found",
		"/ui/sessions/missing":   "Session not found",
		"/ui/agents/ghost":       "agent ghost is not served",
		"/ui/traces/0123456789":  "Trace not found",
		"/ui/runs/missing/trace": "No trace yet",
	} {
		resp, body := ts.page("GET", path, "", nil, "Accept", "text/html,application/xhtml+xml")
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"), path)
		require.Contains(t, doc(t, body).Find("[data-testid=problem]").Text(), want, path)
	}
	// A form post from a page gets a page too.
	resp, body := ts.page("POST", "/ui/sessions/missing/rename", "", url.Values{"name": {"x"}}, "Accept", "text/html")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, doc(t, body).Find("[data-testid=problem]").Text(), "Session not found")
	// htmx and script requests get a short text to show inline, not a page.
	resp, body = ts.page("POST", "/ui/sessions/missing/rename", "", url.Values{"name": {"x"}}, "HX-Request", "true")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.True(t, strings.HasPrefix(body, "Session not found"), body)
	// Retrying a document that does not exist (the document row's button
	// after someone else deleted it) is a 404 too, not a server error.
	resp, body = ts.page("POST", "/ui/knowledge/docs/missing/retry", "", nil, "HX-Request", "true")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
	// A search of a base that does not exist says so in the results.
	resp, body = ts.page("POST", "/ui/knowledge/search", "", url.Values{"query": {"x"}, "knowledge_id": {"nope"}}, "HX-Request", "true")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "Search failed")
	require.Contains(t, body, "nope")
}

func TestConsoleSessionRenameAndDelete(t *testing.T) {
	ts := startServer(t)
	var run struct {
		SessionID string `json:"session_id"`
	}
	ts.json("POST", "/agents/helpdesk/runs", "", `{"message": "first question", "stream": false}`, 200, &run)

	resp, _ := ts.page("POST", "/ui/sessions/"+run.SessionID+"/rename", "", url.Values{"name": {"Renamed in the console"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, body := ts.page("GET", "/ui/sessions/"+run.SessionID, "", nil)
	require.Equal(t, "Renamed in the console", doc(t, body).Find("[data-testid=session-name]").Text())
	maxLen, _ := doc(t, body).Find("[data-testid=rename-input]").Attr("maxlength")
	require.Equal(t, "200", maxLen, "the form allows what the server accepts")
	var sess struct {
		SessionName string `json:"session_name"`
	}
	ts.json("GET", "/sessions/"+run.SessionID, "", "", 200, &sess)
	require.Equal(t, "Renamed in the console", sess.SessionName, "the API sees the console's change")

	_, body = ts.page("GET", "/ui/sessions?q=renamed", "", nil)
	require.Equal(t, 1, doc(t, body).Find("[data-testid=session-row]").Length())
	_, body = ts.page("GET", "/ui/sessions?q=nothing-like-it", "", nil)
	require.Equal(t, 1, doc(t, body).Find("[data-testid=no-sessions]").Length())

	resp, _ = ts.page("POST", "/ui/sessions/"+run.SessionID+"/delete", "", url.Values{})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	ts.json("GET", "/sessions/"+run.SessionID, "", "", 404, nil)
}

// TestConsoleChatStream reads the chat pane's event stream directly.
func TestConsoleChatStream(t *testing.T) {
	ts := startServer(t)
	resp, body := ts.page("POST", "/ui/agents/helpdesk/chat", "", url.Values{"message": {`/call calculator {"expression": "2+2"}`}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// Run and session ids are UUIDv7: they grow with time, so the store adds
	// each new row next to the last.
	require.Regexp(t, `"run":"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"`, body)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var events []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, name)
		}
	}
	require.Equal(t, "start", events[0])
	require.Equal(t, "end", events[len(events)-1])
	require.Contains(t, events, "append", "a tool card")
	require.Contains(t, events, "replace", "the finished tool card")
	require.Contains(t, events, "text")
	require.Contains(t, body, `data-testid=\"tool-result\"\u003e4\u003c/pre\u003e`)

	resp, body = ts.page("POST", "/ui/agents/ghost/chat", "", url.Values{"message": {"hi"}})
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, body, `agent "ghost" not found`)
	resp, _ = ts.page("POST", "/ui/agents/helpdesk/chat", "", url.Values{"message": {"  "}})
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
}

// TestConsoleEventsAnnounceReloads checks the stream that refreshes open pages.
func TestConsoleEventsAnnounceReloads(t *testing.T) {
	ts := startServer(t, withWatcher())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", ts.url+"/ui/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	next := func() string {
		for {
			line, err := r.ReadString('\n')
			require.NoError(t, err)
			if name, ok := strings.CutPrefix(strings.TrimSpace(line), "event: "); ok {
				return name
			}
		}
	}
	require.Equal(t, "ready", next())
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "more.yaml"), []byte("kind: Agent\nname: more\nmodel: echo\n"), 0o644))
	require.Equal(t, "reload", next())
}

// TestShutdownEndsEventStreams checks that stopping the server ends the
// console's open event streams at once: without that, a browser tab left
// open would hold every shutdown for the whole ShutdownTimeout (5 s here).
func TestShutdownEndsEventStreams(t *testing.T) {
	ts := startServer(t)
	resp, err := http.Get(ts.url + "/ui/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		if strings.TrimSpace(line) == "event: ready" {
			break
		}
	}
	start := time.Now()
	ts.stop()
	_, _ = io.Copy(io.Discard, r) // returns when the server ends the stream
	require.Less(t, time.Since(start), 2*time.Second, "the stream ended with the server, not at the shutdown timeout")
}

// TestConsolePageWeight keeps every page's HTML under 100 KB with a busy
// store: pages are paged, and waterfalls are bounded.
func TestConsolePageWeight(t *testing.T) {
	ts := startServer(t)
	for i := range 60 {
		ts.json("POST", "/agents/helpdesk/runs", "", `{"message": "question `+strings.Repeat("x", i)+` /call calculator {\"expression\": \"1+1\"}", "stream": false}`, 200, nil)
	}
	var sessions struct {
		Data []struct {
			SessionID string `json:"session_id"`
		} `json:"data"`
	}
	ts.json("GET", "/sessions?limit=1", "", "", 200, &sessions)
	var traces struct {
		Data []struct {
			TraceID string `json:"trace_id"`
		} `json:"data"`
	}
	require.Eventually(t, func() bool { // spans are flushed every 100 ms
		ts.json("GET", "/traces?limit=1", "", "", 200, &traces)
		return len(traces.Data) > 0
	}, 5*time.Second, 50*time.Millisecond)
	addWorkflows(t, ts, "")
	for _, path := range []string{"/", "/ui/agents", "/ui/agents/helpdesk", "/ui/teams/crew", "/ui/sessions", "/ui/sessions/" + sessions.Data[0].SessionID,
		"/ui/traces", "/ui/traces/" + traces.Data[0].TraceID, "/ui/knowledge", "/ui/triggers", "/ui/config", "/ui/workflows", "/ui/workflows/pipeline",
		"/ui/spend", "/ui/spend?window=month", "/ui/budgets", pipelineRunPage(t, ts, ""), "/ui/approvals", "/ui/editor", "/ui/editor?path=specs.yaml"} {
		resp, body := ts.page("GET", path, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Less(t, len(body), 100_000, path)
		t.Logf("%-40s %6d bytes", path, len(body))
	}
	resp, _ := ts.page("GET", "/static/htmx.min.js?v=x", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Cache-Control"), "immutable")
}

// TestConsoleChatBroadcastTeam streams a team whose members answer at the
// same time: each member gets its own block, opened before its events.
func TestConsoleChatBroadcastTeam(t *testing.T) {
	ts := startServer(t)
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "panel.yaml"), []byte(
		"kind: Team\nname: panel\nmode: broadcast\nmodel: echo\nmembers: [writer, helpdesk]\n"), 0o644))
	ts.json("POST", "/config/reload", "", "", 200, nil)

	resp, body := ts.page("POST", "/ui/teams/panel/chat", "", url.Values{"message": {"hello panel"}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	opened := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var f map[string]string
		require.NoError(t, json.Unmarshal([]byte(data), &f))
		switch {
		case event == "append" && strings.Contains(f["h"], `data-testid="member-run"`):
			block := f["h"][strings.Index(f["h"], `id="s-`)+6:]
			opened[block[:strings.Index(block, `"`)]] = true
		case event == "text" && strings.Contains(f["t"], "-m"):
			require.True(t, opened[strings.TrimPrefix(f["t"], "a-")], "text for %s before its block", f["t"])
		}
	}
	require.Len(t, opened, 2, "a block per member")
	require.Contains(t, body, "user=hello panel", "the writer's answer")
	require.Contains(t, body, `event: end`)
}

// TestConsolePagesOnPostgres renders every page from a PostgreSQL store.
func TestConsolePagesOnPostgres(t *testing.T) {
	dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("set TROUPE_TEST_POSTGRES_DSN to run the console on PostgreSQL")
	}
	ts := startServer(t, withDatabase(pgSchema(t, dsn)))
	var run struct {
		SessionID string `json:"session_id"`
	}
	ts.json("POST", "/agents/helpdesk/runs", "", `{"message": "/call calculator {\"expression\": \"1+2\"}", "stream": false}`, 200, &run)
	_, body := ts.page("GET", "/", "", nil)
	require.Equal(t, 1, doc(t, body).Find("[data-testid=run-row]").Length())
	require.Equal(t, "1 run", doc(t, body).Find("[data-testid=run-count]").Text())
	_, body = ts.page("GET", "/ui/sessions/"+run.SessionID, "", nil)
	require.Equal(t, "3", strings.TrimSpace(doc(t, body).Find("[data-testid=tool-result]").Text()))
	for _, path := range []string{"/ui/agents", "/ui/sessions?q=call", "/ui/traces?status=OK&since=1h", "/ui/knowledge", "/ui/triggers", "/ui/config", "/ui/spend?window=7d", "/ui/budgets"} {
		resp, _ := ts.page("GET", path, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

func TestConsoleKnowledgePages(t *testing.T) {
	ts := startServer(t)
	for i := range 55 {
		form := url.Values{"knowledge_id": {"docs"}, "text_content": {fmt.Sprintf("note number %d about paging", i)}, "name": {fmt.Sprintf("note-%02d.txt", i)}}
		status, body, _ := ts.do("POST", "/knowledge/content", "", "application/x-www-form-urlencoded", form.Encode())
		require.Equal(t, http.StatusAccepted, status, body)
	}
	_, body := ts.page("GET", "/ui/knowledge", "", nil)
	d := doc(t, body)
	require.Equal(t, 50, d.Find("[data-testid=doc-row]").Length())
	require.Equal(t, "/ui/knowledge?page=2", d.Find("[data-testid=pager] a[rel=next]").AttrOr("href", ""))
	_, body = ts.page("GET", "/ui/knowledge?page=2", "", nil)
	require.Equal(t, 5, doc(t, body).Find("[data-testid=doc-row]").Length())
}

// TestConsoleKnowledgeKafkaLag: the knowledge page shows each base's Kafka
// topic and this replica's lag on it, server-rendered.
func TestConsoleKnowledgeKafkaLag(t *testing.T) {
	const events = "kind: Knowledge\nname: events\nkafka: {brokers: [\"127.0.0.1:9092\"], topic: docs}\n---\nkind: Knowledge\nname: news\nkafka: {brokers: [\"127.0.0.1:9092\"], topic: news}\n"
	tests := []struct {
		name string
		lag  func() map[string]int64
		want map[string]string
	}{
		{"consuming", func() map[string]int64 { return map[string]int64{"events": 7, "news": 0} },
			map[string]string{"events": "docs · lag 7", "news": "news · lag 0", "docs": "—"}},
		{"not consuming yet", func() map[string]int64 { return map[string]int64{"events": 7} },
			map[string]string{"events": "docs · lag 7", "news": "news · not consuming", "docs": "—"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, withSpecs(events), withOptions(func(o *console.Options) { o.KafkaLag = tt.lag }))
			_, body := ts.page("GET", "/ui/knowledge", "", nil)
			d := doc(t, body)
			got := map[string]string{}
			for name := range tt.want {
				got[name] = strings.Join(strings.Fields(d.Find("[data-testid=kafka-"+name+"]").Text()), " ")
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// TestConsoleDocumentActions deletes and retries documents through the
// console's row buttons; the API sees the result.
func TestConsoleDocumentActions(t *testing.T) {
	ts := startServer(t)
	upload := func(name, content string) string {
		row := consoleUpload(t, ts, name, content)
		require.Equal(t, name, row.Find("[data-testid=doc-name]").Text())
		return strings.TrimPrefix(row.AttrOr("id", ""), "doc-")
	}
	waitStatus := func(id, want string) {
		require.Eventually(t, func() bool {
			_, body := ts.page("GET", "/ui/knowledge/docs/"+id, "", nil, "HX-Request", "true")
			return inTable(t, body).Find("[data-testid=doc-row]").AttrOr("data-status", "") == want
		}, 10*time.Second, 50*time.Millisecond)
	}

	good := upload("notes.md", "# Notes\n\nSomething worth keeping.\n")
	waitStatus(good, "completed")
	resp, body := ts.page("POST", "/ui/knowledge/docs/"+good+"/delete", "", url.Values{}, "HX-Request", "true")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body, "the row is swapped for nothing")
	ts.json("GET", "/knowledge/content/"+good, "", "", 404, nil)

	bad := upload("broken.pdf", "%PDF-1.4 this is not really a PDF")
	waitStatus(bad, "failed")
	resp, body = ts.page("POST", "/ui/knowledge/docs/"+bad+"/retry", "", url.Values{}, "HX-Request", "true")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	row := inTable(t, body).Find("[data-testid=doc-row]")
	require.Equal(t, "doc-"+bad, row.AttrOr("id", ""))
	require.Equal(t, "processing", row.AttrOr("data-status", ""), "queued again")
	require.Equal(t, "every 1s", row.AttrOr("hx-trigger", ""), "and polling")
	waitStatus(bad, "failed")
}

// consoleUpload uploads a document to base docs through the knowledge
// page's form and returns the row the page answers with.
func consoleUpload(t *testing.T, ts *testServer, name, content string) *goquery.Selection {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	require.NoError(t, w.WriteField("knowledge_id", "docs"))
	f, err := w.CreateFormFile("file", name)
	require.NoError(t, err)
	_, _ = f.Write([]byte(content))
	require.NoError(t, w.Close())
	status, out, _ := ts.do("POST", "/ui/knowledge/upload", "", w.FormDataContentType(), body.String())
	require.Equal(t, http.StatusAccepted, status, out)
	return inTable(t, out).Find("[data-testid=doc-row]")
}

func inTable(t *testing.T, rows string) *goquery.Document {
	return doc(t, "<table><tbody>"+rows+"</tbody></table>")
}

// TestConsoleLargeTraceStaysSmall renders the waterfall of a trace of 2,000
// tool calls: it is cut to its first spans, says so, and the page stays
// under the console's 100 KB budget.
func TestConsoleLargeTraceStaysSmall(t *testing.T) {
	ts := startServer(t)
	const n = 2000
	traceID, start := telemetry.NewTraceID(), time.Now().Add(-time.Minute)
	root := telemetry.Span{TraceID: traceID, SpanID: telemetry.NewSpanID(), Name: "agent.run helpdesk", Kind: telemetry.KindRun,
		Start: start, End: start.Add(time.Duration(n+1) * time.Millisecond), Status: telemetry.StatusOK, AgentID: "helpdesk",
		Attributes: map[string]string{telemetry.RootAttribute: "true", telemetry.InputAttribute: "do it all"}}
	spans := []telemetry.Span{root}
	for i := range n {
		at := start.Add(time.Duration(i) * time.Millisecond)
		spans = append(spans, telemetry.Span{TraceID: traceID, SpanID: telemetry.NewSpanID(), ParentID: root.SpanID, Name: "tool.call calculator",
			Kind: telemetry.KindTool, Start: at, End: at.Add(time.Millisecond), Status: telemetry.StatusOK, AgentID: "helpdesk",
			Attributes: map[string]string{"tool.name": "calculator", "tool.arguments": `{"expression":"6*7"}`, "tool.result": "42"}})
	}
	require.NoError(t, ts.traces.Write(t.Context(), spans))
	resp, body := ts.page("GET", "/ui/traces/"+traceID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	d := doc(t, body)
	rows := d.Find("[data-testid=span]").Length()
	require.Positive(t, rows)
	require.Less(t, rows, n+1)
	require.Contains(t, d.Find("[data-testid=spans-cut]").Text(), fmt.Sprintf("%d of %d", rows, n+1))
	require.Less(t, len(body), 100_000, "%d rows", rows)
	t.Logf("%d rows, %d bytes", rows, len(body))
}

// TestConsoleLongSessionIsCut checks that a long session's page shows its
// latest 50 runs and says how many it leaves out, and that continuing it in
// the chat shows its latest 20 turns.
func TestConsoleLongSessionIsCut(t *testing.T) {
	ts := startServer(t)
	var run struct {
		SessionID string `json:"session_id"`
	}
	ts.json("POST", "/agents/helpdesk/runs", "", `{"message": "question 0", "stream": false}`, 200, &run)
	for i := 1; i < 60; i++ {
		ts.json("POST", "/agents/helpdesk/runs", "", fmt.Sprintf(`{"message": "question %d", "session_id": %q, "stream": false}`, i, run.SessionID), 200, nil)
	}
	_, body := ts.page("GET", "/ui/sessions/"+run.SessionID, "", nil)
	d := doc(t, body)
	require.Equal(t, 50, d.Find("[data-testid=turn]").Length())
	require.Contains(t, d.Find("[data-testid=omitted]").Text(), "10 earlier runs")
	require.Contains(t, d.Find("[data-testid=turn]").Last().Text(), "question 59", "the latest runs are the ones shown")

	_, body = ts.page("GET", "/ui/agents/helpdesk?session="+run.SessionID, "", nil)
	d = doc(t, body)
	require.Equal(t, 20, d.Find("#transcript [data-testid=turn]").Length())
	require.Contains(t, d.Text(), "40 earlier turns")
}

// TestSignInRedirectStaysOnSite: after sign-in the console redirects only to
// clean relative paths; anything a browser could resolve to another site
// (tabs and backslashes it strips or turns into slashes, encoded or not)
// goes to / instead.
func TestSignInRedirectStaysOnSite(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	tests := []struct {
		name string
		next string // as sent in the form body, percent-encoded
		want string
	}{
		{"tab", "/%09/evil.com", "/"},
		{"encoded tab", "/%2509/evil.com", "/"},
		{"newline", "/%0A/evil.com", "/"},
		{"scheme-relative", "//evil.com", "/"},
		{"backslash", "/%5Cevil.com", "/"},
		{"encoded backslash", "/%255Cevil.com", "/"},
		{"encoded slash", "/%252Fevil.com", "/"},
		{"absolute", "https://evil.com", "/"},
		{"scheme only", "javascript:alert(1)", "/"},
		{"space", "/%20/evil.com", "/"},
		{"relative without slash", "evil.com", "/"},
		{"empty", "", "/"},
		{"path with query", "/ok?x=1", "/ok?x=1"},
		{"console page", "/ui/sessions?q=a%2Bb", "/ui/sessions?q=a+b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Raw, so the test controls the encoding the server decodes.
			body := "key=" + url.QueryEscape(adminKey) + "&next=" + tt.next
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/ui/login", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			require.Equal(t, tt.want, resp.Header.Get("Location"))

			// The sign-in form carries next along only when it is clean.
			_, page := ts.page("GET", "/ui/login?next="+tt.next, "", nil)
			next, _ := doc(t, page).Find("input[name=next]").Attr("value")
			require.Equal(t, tt.want, next)
		})
	}
}
