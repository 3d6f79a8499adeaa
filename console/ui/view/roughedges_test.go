package view_test

import (
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// TestMarkdownRendersTheCommonMarks checks what a chat answer may use:
// headings, emphasis, lists, links, inline code and fenced code blocks.
func TestMarkdownRendersTheCommonMarks(t *testing.T) {
	tests := []struct {
		name, in, sel, text string
	}{
		{"heading", "# Title", "h1", "Title"},
		{"subheading", "text\n\n## Part", "h2", "Part"},
		{"emphasis", "some *light* words", "em", "light"},
		{"strong", "some **bold** words", "strong", "bold"},
		{"bullets", "- one\n- two", "ul > li", "onetwo"},
		{"numbers", "1. one\n2. two", "ol > li", "onetwo"},
		{"link", "see [the docs](https://example.com/docs)", `a[href="https://example.com/docs"]`, "the docs"},
		{"inline code", "run `troupe check` first", "p > code", "troupe check"},
		{"fenced code", "```go\nx := 1 < 2\n```", `pre > code.language-go`, "x := 1 < 2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := render(t, view.Markdown(tt.in))
			require.Equal(t, tt.text, doc.Find(tt.sel).Text(), "in %s", tt.in)
		})
	}
}

// TestMarkdownIsSanitized feeds hostile answers: no raw HTML reaches the
// page, no script URL becomes a link or an image, no event attribute
// survives, and the text is still shown.
func TestMarkdownIsSanitized(t *testing.T) {
	tests := []struct{ name, in string }{
		{"script element", "hi <script>alert(1)</script> there"},
		{"script block", "<script>\nalert(1)\n</script>"},
		{"event attribute", `<img src="x" onerror="alert(1)">`},
		{"event attribute inline", `click <a href="https://example.com" onclick="alert(1)">here</a>`},
		{"javascript link", "[click](javascript:alert(1))"},
		{"javascript link, upper case", "[click](JAVASCRIPT:alert(1))"},
		{"javascript link, entity", "[click](jav&#x61;script:alert(1))"},
		{"vbscript link", "[click](vbscript:msgbox(1))"},
		{"data link", "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"},
		{"javascript image", "![x](javascript:alert(1))"},
		{"javascript autolink", "<javascript:alert(1)>"},
		{"reference link", "[click][x]\n\n[x]: javascript:alert(1)"},
		{"iframe", `<iframe src="https://evil.example"></iframe>`},
		{"style", "<style>body{display:none}</style>"},
		{"svg", `<svg onload="alert(1)"></svg>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			require.NoError(t, view.Markdown(tt.in).Render(t.Context(), &b))
			html := b.String()
			doc, err := goquery.NewDocumentFromReader(strings.NewReader(html))
			require.NoError(t, err)
			require.Zero(t, doc.Find("script, iframe, style, svg, img[onerror]").Length(), html)
			doc.Find("*").Each(func(_ int, s *goquery.Selection) {
				for _, a := range s.Nodes[0].Attr {
					require.False(t, strings.HasPrefix(strings.ToLower(a.Key), "on"), "event attribute %s in %s", a.Key, html)
					if a.Key == "href" || a.Key == "src" {
						v := strings.ToLower(strings.TrimSpace(a.Val))
						for _, bad := range []string{"javascript:", "vbscript:", "data:text"} {
							require.False(t, strings.HasPrefix(v, bad), "%s=%q in %s", a.Key, a.Val, html)
						}
					}
				}
			})
		})
	}
	// Nothing is lost: text around raw HTML is still shown.
	require.Contains(t, render(t, view.Markdown("hi <script>alert(1)</script> there")).Text(), "there")
}

// TestStoredAnswersRenderMarkdown: a session's stored answer shows as
// Markdown, as the chat's streamed one does when complete.
func TestStoredAnswersRenderMarkdown(t *testing.T) {
	run := store.Run{ID: "r1", SessionID: "s1", Input: "**not markdown** in the question", Content: "## Result\n\nThe `answer` is **42**.\n<script>alert(1)</script>", Status: "COMPLETED"}
	doc := render(t, view.TargetDetail(frame("agents"), view.TargetPage{Target: view.Target{Kind: "agent", Name: "a", Status: "ok"}, SessionID: "s1", Transcript: []store.Run{run}}))
	answer := doc.Find(`[data-testid=answer]`)
	require.Equal(t, "Result", answer.Find("h2").Text())
	require.Equal(t, "answer", answer.Find("code").Text())
	require.Equal(t, "42", answer.Find("strong").Text())
	require.Zero(t, doc.Find("main script").Length())
	require.Equal(t, "**not markdown** in the question", doc.Find(`[data-testid=user-message]`).Text(), "what the user typed is shown as typed")

	doc = render(t, view.ChatAnswer("a-r1", "*done*"))
	require.Equal(t, "done", doc.Find(`#a-r1.answer.md em`).Text())
}

func TestPluralsAndKindLabels(t *testing.T) {
	doc := render(t, view.ChatEnd(view.ChatUsage{RunID: "r", SessionID: "s", Status: "COMPLETED", Metrics: event.Metrics{ToolCalls: 1}}))
	require.Equal(t, "COMPLETED 0 in · 0 out tokens · 0 · 1 tool call", squash(doc.Find(`[data-testid=usage]`).Text()), "the badge a word of its own")
	require.NotContains(t, doc.Text(), "1 tool calls")
	doc = render(t, view.ChatEnd(view.ChatUsage{RunID: "r", SessionID: "s", Status: "COMPLETED", Metrics: event.Metrics{ToolCalls: 3}}))
	require.Contains(t, doc.Find(`[data-testid=usage]`).Text(), "3 tool calls")

	for _, k := range spec.Kinds {
		l := view.KindLabel(string(k))
		require.NotEqual(t, string(k), l, "%s has no label", k)
		require.False(t, strings.HasSuffix(l, "ss") || strings.HasSuffix(l, "ges"), "%s is labelled %q", k, l)
	}
	require.Equal(t, "Knowledge bases", view.KindLabel("Knowledge"))

	o := view.Overview{Counts: []view.KindCount{{Kind: "Knowledge", OK: 1}, {Kind: "Agent", OK: 2}}}
	doc = render(t, view.OverviewPage(frame("overview"), o))
	require.Equal(t, "Knowledge bases", doc.Find(`[data-testid=count-Knowledge] h2`).Text())
	require.Equal(t, "Agents", doc.Find(`[data-testid=count-Agent] h2`).Text())
}

// TestBadgesAreWordsApart: a badge after a name reads as its own word
// ("writer agent ok", not "writer agentok") in every heading that has one.
func TestBadgesAreWordsApart(t *testing.T) {
	doc := render(t, view.TargetDetail(frame("agents"), view.TargetPage{Target: view.Target{Kind: "agent", Name: "writer", Status: "ok"}}))
	require.Equal(t, "writer agent ok", squash(doc.Find("#spec-h").Text()))
	member := store.Run{ID: "m1", ComponentID: "writer", Status: "COMPLETED"}
	doc = render(t, view.SessionDetail(frame("sessions"), view.SessionPage{Session: store.Session{ID: "s1"},
		Runs: []store.Run{{ID: "r1", SessionID: "s1", Status: "COMPLETED"}}, Members: map[string][]store.Run{"r1": {member}}}))
	require.Equal(t, "writer COMPLETED", squash(doc.Find(`[data-testid=member-run] summary`).Text()))
	doc = renderIn(t, view.WorkflowStepRow(view.StepRun{Run: "r1", Key: "review", Status: "PAUSED"}), "<table><tbody>", "</tbody></table>")
	require.Equal(t, "PAUSED waiting for approval", squash(doc.Find(`[data-testid=step-status]`).Text()))
}

// squash collapses runs of white space, as a browser shows text.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestHeaderSaysWhoIsSignedIn: signed out there is no key and no sign-out;
// signed in, who it is and a sign-out button.
func TestHeaderSaysWhoIsSignedIn(t *testing.T) {
	f := frame("")
	f.AuthOn = true
	doc := render(t, view.LoginPage(f, view.Login{}))
	require.Zero(t, doc.Find(`[data-testid=key-name]`).Length(), "signed out")
	require.Zero(t, doc.Find(`[data-testid=logout]`).Length(), "signed out")
	require.NotContains(t, doc.Find("header").Text(), "key:")

	f.KeyName = "alice · key #1"
	doc = render(t, view.OverviewPage(f, view.Overview{}))
	require.Equal(t, "alice · key #1", doc.Find(`[data-testid=key-name]`).Text())
	require.Equal(t, "Sign out", doc.Find(`[data-testid=logout]`).Text())
}

func TestNavigationHidesWhatTheKeyMayNotOpen(t *testing.T) {
	f := frame("sessions")
	f.Hide = map[string]bool{"queue": true, "knowledge": true}
	doc := render(t, view.OverviewPage(f, view.Overview{}))
	require.Zero(t, doc.Find(`[data-testid=nav-queue], [data-testid=nav-knowledge]`).Length())
	require.Equal(t, 1, doc.Find(`[data-testid=nav-sessions]`).Length())
	require.Equal(t, 1, doc.Find(`[data-testid=nav-config]`).Length())
}

func TestLayoutLinksTheFavicon(t *testing.T) {
	doc := render(t, view.OverviewPage(frame("overview"), view.Overview{}))
	require.Equal(t, "/static/favicon.svg?v=1", doc.Find(`link[rel=icon]`).AttrOr("href", ""))
	require.Equal(t, "image/svg+xml", doc.Find(`link[rel=icon]`).AttrOr("type", ""))
}

// TestActivityChartHasATimeAxis: labels at each quarter hour (UTC, as the
// page's other times), placed where their time is; the tallest bar's
// count; an accessible name that says the times and the totals.
func TestActivityChartHasATimeAxis(t *testing.T) {
	from := time.Date(2026, 11, 21, 8, 1, 0, 0, time.UTC)
	var buckets []store.ActivityBucket
	for i := range 60 {
		buckets = append(buckets, store.ActivityBucket{Start: from.Add(time.Duration(i) * time.Minute)})
	}
	buckets[10].Runs, buckets[10].Finished = 1, 1
	buckets[20].Runs, buckets[20].Finished = 7, 7
	doc := render(t, view.OverviewPage(frame("overview"), view.Overview{Activity: buckets}))
	chart := doc.Find(`[data-testid=activity-chart]`)
	require.Equal(t, []string{"08:15", "08:30", "08:45", "09:00"}, texts(chart.Find(`[data-testid=chart-tick]`)))
	styles := []string{}
	chart.Find(`[data-testid=chart-tick]`).Each(func(_ int, s *goquery.Selection) { styles = append(styles, s.AttrOr("style", "")) })
	require.Equal(t, []string{
		"left:23.3%;transform:translateX(-50%);",
		"left:48.3%;transform:translateX(-50%);",
		"left:73.3%;transform:translateX(-50%);",
		"left:98.3%;transform:translateX(-100%);", // kept inside the chart
	}, styles)
	require.Equal(t, "true", chart.Find(`[data-testid=chart-x]`).AttrOr("aria-hidden", ""))
	require.Equal(t, "7", chart.Find(`[data-testid=chart-ymax]`).Text())
	require.Equal(t, "Runs per interval over the last hour, 08:01 to 09:01 UTC: 8 runs, 0 errors; the tallest bar is 7 runs", chart.Find("svg").AttrOr("aria-label", ""))
	require.Equal(t, "8 runs", chart.Find(`[data-testid=run-count]`).Text())
	require.Contains(t, chart.Find("g title").Eq(10).Text(), "08:11: 1 run, 0 errors")

	doc = render(t, view.OverviewPage(frame("overview"), view.Overview{}))
	require.Zero(t, doc.Find(`[data-testid=chart-tick], [data-testid=chart-ymax]`).Length(), "no activity, no axis")
}
