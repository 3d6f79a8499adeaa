package console_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"
)

// navLinks returns the hrefs of a page's navigation, by nav id.
func navLinks(t *testing.T, body string) map[string]string {
	t.Helper()
	out := map[string]string{}
	doc(t, body).Find(`nav[aria-label=Main] a[data-testid^=nav-]`).Each(func(_ int, s *goquery.Selection) {
		out[strings.TrimPrefix(s.AttrOr("data-testid", ""), "nav-")] = s.AttrOr("href", "")
	})
	return out
}

// TestConsoleNavigationShowsOnlyPagesTheKeyMayOpen signs in with keys of
// different scopes: every link the navigation shows opens (200), every
// page it leaves out is refused (403). Open (no keys) and admin see all.
func TestConsoleNavigationShowsOnlyPagesTheKeyMayOpen(t *testing.T) {
	t.Parallel()
	open := startServer(t)
	_, body := open.page("GET", "/", "", nil)
	all := navLinks(t, body)
	require.Len(t, all, 13, "without keys the navigation shows every page: %v", all)

	ts := startServer(t, withKeys(keys))
	tests := []struct {
		name, key string
		hidden    []string
	}{
		{"admin", adminKey, nil},
		{"alice: no knowledge, no admin", aliceKey, []string{"knowledge", "queue", "approvals"}},
		{"reader: agents only", readerKey, []string{"sessions", "traces", "spend", "budgets", "knowledge", "memories", "queue", "approvals"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.page("GET", "/ui/config", tt.key, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			shown := navLinks(t, body)
			for id, href := range all {
				if slices.Contains(tt.hidden, id) {
					require.NotContains(t, shown, id)
					resp, _ := ts.page("GET", href, tt.key, nil, "Accept", "text/html")
					require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s is hidden because it is refused", href)
					continue
				}
				require.Equal(t, href, shown[id])
				resp, _ := ts.page("GET", href, tt.key, nil, "Accept", "text/html")
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s is shown, so it opens", href)
			}
			require.Len(t, shown, len(all)-len(tt.hidden))
		})
	}

	// Signed out, the sign-in page offers nothing to navigate to.
	_, body = ts.page("GET", "/ui/login", "", nil)
	require.Empty(t, navLinks(t, body))
}

// TestConsoleHeaderSaysWhoIsSignedIn: the sign-in page has no key and no
// sign-out; signed in, the header names the key's user and the key, with a
// sign-out button that signs out.
func TestConsoleHeaderSaysWhoIsSignedIn(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	_, body := ts.page("GET", "/ui/login", "", nil)
	d := doc(t, body)
	require.Zero(t, d.Find(`[data-testid=key-name], [data-testid=logout]`).Length())
	require.NotContains(t, d.Find("header").Text(), "key")
	require.NotContains(t, d.Find("header").Text(), "Sign out")

	for key, want := range map[string]string{aliceKey: "alice · key #1", adminKey: "key #4"} {
		_, body = ts.page("GET", "/", key, nil)
		d = doc(t, body)
		require.Equal(t, want, d.Find(`[data-testid=key-name]`).Text())
		require.Equal(t, "Sign out", d.Find(`header [data-testid=logout]`).Text())
	}
	resp, _ := ts.page("POST", "/ui/logout", aliceKey, url.Values{})
	require.Equal(t, "/ui/login", resp.Header.Get("Location"))
	require.Equal(t, -1, resp.Cookies()[0].MaxAge, "the cookie is cleared")
}

// TestConsoleFavicon: pages link an SVG icon with the assets' version
// query, and /favicon.ico, which browsers ask for anyway, leads to it
// without a key.
func TestConsoleFavicon(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	_, body := ts.page("GET", "/ui/login", "", nil)
	href := doc(t, body).Find(`link[rel=icon]`).AttrOr("href", "")
	require.Regexp(t, `^/static/favicon\.svg\?v=[0-9a-f]{12}$`, href)

	resp, _ := ts.page("GET", "/favicon.ico", "", nil)
	require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
	require.Equal(t, href, resp.Header.Get("Location"))
	resp, svg := ts.page("GET", href, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "image/svg+xml", resp.Header.Get("Content-Type"))
	require.True(t, strings.HasPrefix(svg, "<svg "), svg)
	require.NotContains(t, svg, "<script")
}

// sseEvents parses a chat stream into its events, in order.
func sseEvents(t *testing.T, body string) (names []string, data []map[string]string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "event: "); ok {
			name = n
			continue
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			var f map[string]string
			require.NoError(t, json.Unmarshal([]byte(d), &f))
			names, data = append(names, name), append(data, f)
		}
	}
	return names, data
}

// TestConsoleChatRendersMarkdown chats with the echo model, which answers
// with the message: the answer streams as text, then is replaced by its
// Markdown, sanitized, before the stream ends; the session page shows the
// stored answer the same way.
func TestConsoleChatRendersMarkdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs("kind: Agent\nname: parrot\nmodel: echo\n---\nkind: Team\nname: duo\nmode: broadcast\nmodel: echo\nmembers: [parrot]\n"))
	const message = "markdown please\n\n## Plan\n\n- **first** step\n- *second* step\n\nRun `troupe check`, see [the docs](https://example.com/docs).\n\n" +
		"```yaml\nkind: Agent\n```\n\n<script>alert(1)</script> <img src=x onerror=alert(1)> [bad](javascript:alert(1))"
	resp, body := ts.page("POST", "/ui/agents/parrot/chat", "", url.Values{"message": {message}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	names, data := sseEvents(t, body)
	run := data[0]["run"]
	require.NotEmpty(t, run)
	require.Contains(t, names, "text", "the answer streams as text first")
	i := slices.IndexFunc(data, func(d map[string]string) bool { return d["t"] == "a-"+run && d["h"] != "" })
	require.GreaterOrEqual(t, i, 0, "the answer is replaced once complete")
	require.Equal(t, "replace", names[i])
	require.Equal(t, len(names)-2, i, "just before the end")
	require.Equal(t, "end", names[len(names)-1])

	check := func(answer *goquery.Selection) string {
		t.Helper()
		require.Equal(t, 1, answer.Length())
		require.Equal(t, "Plan", answer.Find("h2").Text())
		require.Equal(t, []string{"first step", "second step"}, []string{answer.Find("ul li").Eq(0).Text(), answer.Find("ul li").Eq(1).Text()})
		require.Equal(t, "first", answer.Find("li strong").Text())
		require.Equal(t, "second", answer.Find("li em").Text())
		require.Equal(t, "troupe check", answer.Find("p code").Text())
		require.Equal(t, "https://example.com/docs", answer.Find(`a:contains("the docs")`).AttrOr("href", ""))
		require.Equal(t, "kind: Agent\n", answer.Find("pre code.language-yaml").Text())
		require.Zero(t, answer.Find("script, img").Length(), "no raw HTML")
		require.Zero(t, answer.Find(`a[href^="javascript"]`).Length())
		html, err := answer.Html()
		require.NoError(t, err)
		require.NotContains(t, html, "onerror")
		return html
	}
	live := check(inTable(t, data[i]["h"]).Find("#a-" + run))

	_, page := ts.page("GET", "/ui/sessions/"+data[0]["session"], "", nil)
	stored := check(doc(t, page).Find("#run-" + run + " [data-testid=answer]"))
	require.Equal(t, live, stored, "the chat and the session page render an answer alike")

	// A team member's answer becomes Markdown when the member is done.
	_, body = ts.page("POST", "/ui/teams/duo/chat", "", url.Values{"message": {message}})
	names, data = sseEvents(t, body)
	run = data[0]["run"]
	i = slices.IndexFunc(data, func(d map[string]string) bool { return d["t"] == "a-"+run+"-m0" && d["h"] != "" })
	require.GreaterOrEqual(t, i, 0, "the member's answer is replaced once complete")
	require.Equal(t, "replace", names[i])
	check(inTable(t, data[i]["h"]).Find("#a-" + run + "-m0"))
}

// TestConsoleKnowledgeCountsFollowTheRows uploads a good and a broken
// document through the console: a row's last poll (its status no longer
// processing) tells the page to count again, the counts all come from
// the document list and agree, and no finished row keeps a progress bar;
// the failed one shows its error instead.
func TestConsoleKnowledgeCountsFollowTheRows(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	upload := func(name, content string) string {
		return strings.TrimPrefix(consoleUpload(t, ts, name, content).AttrOr("id", ""), "doc-")
	}
	// poll polls a row as the page does until it is done, checking each
	// answer: the summary is refreshed exactly when the row stops polling.
	poll := func(id string) *goquery.Selection {
		var row *goquery.Selection
		require.Eventually(t, func() bool {
			resp, body := ts.page("GET", "/ui/knowledge/docs/"+id, "", nil, "HX-Request", "true")
			row = inTable(t, body).Find("[data-testid=doc-row]")
			processing := row.AttrOr("data-status", "") == "processing"
			require.Equal(t, processing, row.Is("[hx-trigger]"), "a row polls while processing")
			if processing {
				require.Empty(t, resp.Header.Get("HX-Trigger"))
				require.Equal(t, 1, row.Find("progress").Length())
				return false
			}
			require.Equal(t, "troupe-docs", resp.Header.Get("HX-Trigger"), "its last poll makes the page count again")
			return true
		}, 10*time.Second, 20*time.Millisecond)
		require.Zero(t, row.Find("progress").Length(), "no progress bar once done")
		return row
	}

	good := poll(upload("notes.md", "# Notes\n\nSomething worth keeping.\n"))
	require.Equal(t, "completed", good.AttrOr("data-status", ""))
	bad := poll(upload("broken.pdf", "%PDF-1.4 this is not really a PDF"))
	require.Equal(t, "failed", bad.AttrOr("data-status", ""))
	require.NotEmpty(t, strings.TrimSpace(bad.Find("[data-testid=doc-message]").Text()), "the error instead of a bar")

	_, body := ts.page("GET", "/ui/knowledge", "", nil)
	d := doc(t, body)
	require.Equal(t, "2 1 failed", squash(d.Find("[data-testid=base-docs] [data-testid=base-documents]").Text()))
	require.Equal(t, "1 failed", d.Find("[data-testid=base-failed]").Text())
	require.Zero(t, d.Find("[data-testid=base-processing]").Length())
	require.Equal(t, "2", d.Find("[data-testid=doc-count]").Text())
	require.Equal(t, 2, d.Find("[data-testid=doc-row]").Length())
	require.Equal(t, "2 in all", strings.TrimSpace(d.Find("#doc-pager").Text()))
	require.Zero(t, d.Find("#doc-rows progress").Length())
	// The summary's refresh carries every count outside it along.
	summary := d.Find("#kb-bases")
	require.Equal(t, "troupe-docs from:body delay:500ms", summary.AttrOr("hx-trigger", ""))
	for _, id := range strings.Split(summary.AttrOr("hx-select-oob", ""), ",") {
		require.Equal(t, 1, d.Find(id).Length(), "%s is on the page", id)
	}
	require.Equal(t, []string{"#doc-count", "#doc-pager"}, strings.Split(summary.AttrOr("hx-select-oob", ""), ","))
}

// squash collapses runs of white space, as a browser shows text.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
