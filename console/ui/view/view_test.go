package view_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

func frame(active string) view.Frame {
	return view.Frame{Title: "T", Active: active, Version: "test", Assets: func(n string) string { return "/static/" + n + "?v=1" }}
}

func render(t *testing.T, c templ.Component) *goquery.Document {
	t.Helper()
	return renderIn(t, c, "", "")
}

// renderIn parses the output inside a wrapper, as the browser will: table
// rows only survive inside a table.
func renderIn(t *testing.T, c templ.Component, before, after string) *goquery.Document {
	t.Helper()
	var b strings.Builder
	require.NoError(t, c.Render(context.Background(), &b))
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(before + b.String() + after))
	require.NoError(t, err)
	return doc
}

func texts(sel *goquery.Selection) []string {
	var out []string
	sel.Each(func(_ int, s *goquery.Selection) { out = append(out, strings.TrimSpace(s.Text())) })
	return out
}

var t0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

func TestLayoutMarksTheCurrentPageAndLoadsOnlyLocalAssets(t *testing.T) {
	doc := render(t, view.ConfigPage(frame("config"), view.Config{}))
	require.Equal(t, "page", doc.Find(`[data-testid=nav-config]`).AttrOr("aria-current", ""))
	require.False(t, doc.Find(`[data-testid=nav-overview]`).Is("[aria-current]"))
	doc.Find("script[src], link[href]").Each(func(_ int, s *goquery.Selection) {
		src := s.AttrOr("src", s.AttrOr("href", ""))
		require.True(t, strings.HasPrefix(src, "/static/"), "asset %s is not served locally", src)
	})
	require.Equal(t, "en", doc.Find("html").AttrOr("lang", ""))
	require.Equal(t, 1, doc.Find("main#main").Length())
	require.Equal(t, 0, doc.Find(`[data-testid=logout]`).Length(), "no sign-out without auth")
	require.Contains(t, doc.Find(`[data-testid=no-files]`).Text(), "kind: Agent", "an empty folder explains what to add")
}

func TestOverviewShowsStatusDiagnosticsAndChart(t *testing.T) {
	buckets := make([]store.ActivityBucket, 30)
	for i := range buckets {
		buckets[i].Start = t0.Add(time.Duration(i) * 2 * time.Minute)
	}
	buckets[3] = store.ActivityBucket{Start: buckets[3].Start, Runs: 4, Errors: 1, Finished: 4, AvgLatency: 200 * time.Millisecond, MaxLatency: time.Second}
	buckets[7] = store.ActivityBucket{Start: buckets[7].Start, Runs: 2, Finished: 2, AvgLatency: 100 * time.Millisecond, MaxLatency: 150 * time.Millisecond}
	o := view.Overview{
		Reload: view.Reload{Generation: 7, Version: "abcdef0123456789", Time: t0, Duration: 3 * time.Millisecond},
		Counts: []view.KindCount{{Kind: "Agent", OK: 2, Broken: 1}, {Kind: "Team", OK: 1}},
		Broken: []view.Diagnostic{{Severity: "error", Text: `agents.d/bad.yaml:4:9: agents.bad.tools[0]: unknown tool "calculater"`}},
		Recent: []store.Run{{ID: "r1", SessionID: "s1", ComponentID: "helpdesk", Type: "agent", Input: "<script>alert(1)</script>", Status: event.StatusCompleted,
			CreatedAt: t0, Metrics: event.Metrics{InputTokens: 5, OutputTokens: 7, Duration: 1500 * time.Millisecond}}},
		Activity: buckets,
	}
	doc := render(t, view.OverviewPage(frame("overview"), o))
	require.Contains(t, doc.Find(`[data-testid=reload-card]`).Text(), "generation 7")
	require.Contains(t, doc.Find(`[data-testid=count-Agent]`).Text(), "3")
	require.Contains(t, doc.Find(`[data-testid=count-Agent]`).Text(), "1 broken")
	require.Equal(t, []string{`agents.d/bad.yaml:4:9: agents.bad.tools[0]: unknown tool "calculater"`}, texts(doc.Find(`[data-testid=diagnostic]`)))

	chart := doc.Find(`[data-testid=activity-chart]`)
	require.Equal(t, 2, chart.Find("rect.ok").Length(), "one bar per interval with runs")
	require.Equal(t, 1, chart.Find("rect.err").Length())
	require.Equal(t, "6 runs", chart.Find(`[data-testid=run-count]`).Text())
	require.Equal(t, "16.7% errors", chart.Find(`[data-testid=error-rate]`).Text())
	require.Equal(t, 2, len(strings.Fields(chart.Find("polyline").AttrOr("points", ""))), "a latency point per interval with finished runs")
	// The tallest bar reaches the top of the drawing area.
	require.Equal(t, "10.0", chart.Find("rect.err").AttrOr("y", ""))

	row := doc.Find(`[data-testid=run-row]`)
	require.Equal(t, 1, row.Length())
	require.Contains(t, row.Text(), "<script>alert(1)</script>", "user input is text")
	require.Equal(t, 0, doc.Find("main script").Length(), "and never markup")
	require.Contains(t, row.Text(), "1.50s")
	require.Equal(t, "/ui/sessions/s1#run-r1", row.Find("a").First().AttrOr("href", ""))
}

func TestTargetDetailHasSpecEndpointsAndChat(t *testing.T) {
	p := view.TargetPage{
		Target:    view.Target{Kind: "team", Name: "crew", Model: "echo", Demo: true, Status: "ok", Mode: "route", Members: []view.Member{{Kind: "agent", Name: "writer"}, {Kind: "team", Name: "inner"}}},
		File:      "agents.d/crew.yaml",
		YAML:      "kind: Team\nname: crew\n",
		Endpoints: []view.Endpoint{{Method: "POST", Path: "/teams/crew/runs", Curl: "curl -N http://x/teams/crew/runs"}},
		CanRun:    true, SessionID: "s9",
	}
	doc := render(t, view.TargetDetail(frame("agents"), p))
	require.Equal(t, "kind: Team\nname: crew\n", doc.Find(`[data-testid=resolved-yaml]`).Text())
	require.Equal(t, "curl -N http://x/teams/crew/runs", doc.Find(`[data-testid=curl]`).Text())
	require.Equal(t, "/ui/teams/crew/chat", doc.Find(`[data-testid=chat-form]`).AttrOr("data-chat", ""))
	require.Equal(t, "s9", doc.Find("#chat-session").AttrOr("value", ""))
	require.Equal(t, "chat-input", doc.Find(`label[for=chat-input]`).AttrOr("for", ""), "the message box has a label")
	var links []string
	doc.Find(".facts a").Each(func(_ int, s *goquery.Selection) { links = append(links, s.AttrOr("href", "")) })
	require.Equal(t, []string{"/ui/agents/writer", "/ui/teams/inner"}, links)

	p.CanRun = false
	doc = render(t, view.TargetDetail(frame("agents"), p))
	require.Equal(t, 0, doc.Find(`[data-testid=chat-form]`).Length())
}

func TestToolCardBeforeAndAfter(t *testing.T) {
	tc := event.ToolCall{ID: "call_1", Name: "calculator", Args: map[string]any{"expression": "6*7"}}
	doc := render(t, view.ToolCard("run1", tc, false))
	card := doc.Find(`[data-testid=tool-card]`)
	require.Equal(t, view.ToolCardID("run1", "call_1"), card.AttrOr("id", ""))
	require.Contains(t, card.Find("summary").Text(), "running")
	require.JSONEq(t, `{"expression": "6*7"}`, card.Find(`[data-testid=tool-args]`).Text())
	require.Equal(t, 0, card.Find(`[data-testid=tool-result]`).Length())

	tc.Result, tc.Duration, tc.Error = "division by zero", 3*time.Millisecond, true
	card = render(t, view.ToolCard("run1", tc, true)).Find(`[data-testid=tool-card]`)
	require.True(t, card.HasClass("failed"))
	require.Equal(t, "division by zero", card.Find(`[data-testid=tool-result]`).Text())
	require.Contains(t, card.Find("summary").Text(), "error")
}

func TestChatEndLinksSessionAndTrace(t *testing.T) {
	doc := render(t, view.ChatEnd(view.ChatUsage{RunID: "r", SessionID: "s", TraceURL: "/ui/traces/abc", SessionLink: true, Status: "ERROR", Error: "model timed out",
		Metrics: event.Metrics{InputTokens: 3, OutputTokens: 4, Duration: 20 * time.Millisecond}}))
	require.Equal(t, "model timed out", doc.Find(`[data-testid=chat-error]`).Text())
	require.Equal(t, "/ui/traces/abc", doc.Find(`[data-testid=trace-link]`).AttrOr("href", ""))
	require.Equal(t, "/ui/sessions/s#run-r", doc.Find(`[data-testid=session-link]`).AttrOr("href", ""))
	require.Contains(t, doc.Find(`[data-testid=usage]`).Text(), "3 in · 4 out")
}

func TestSessionDetailNestsMemberRuns(t *testing.T) {
	p := view.SessionPage{
		Session:  store.Session{ID: "s1", Type: "team", ComponentID: "crew", Name: "Plan a trip", CreatedAt: t0},
		Runs:     []store.Run{{ID: "r1", Input: "plan", Content: "done", Status: event.StatusCompleted}},
		Members:  map[string][]store.Run{"r1": {{ID: "m1", ComponentID: "writer", Content: "draft", Status: event.StatusCompleted, Tools: []event.ToolCall{{ID: "c", Name: "calculator"}}}}},
		CanWrite: true, Traces: true,
	}
	doc := render(t, view.SessionDetail(frame("sessions"), p))
	require.Equal(t, "Plan a trip", doc.Find(`[data-testid=session-name]`).Text())
	member := doc.Find(`[data-testid=member-run]`)
	require.Contains(t, member.Find("summary").Text(), "writer")
	require.Equal(t, 1, member.Find(`[data-testid=tool-card]`).Length())
	require.Equal(t, "/ui/runs/r1/trace", doc.Find(`[data-testid=trace-link]`).AttrOr("href", ""))
	require.Equal(t, "/ui/sessions/s1/rename", doc.Find(`[data-testid=rename-form]`).AttrOr("action", ""))
	require.Equal(t, "/ui/teams/crew?session=s1", doc.Find(`[data-testid=continue]`).AttrOr("href", ""))

	p.CanWrite, p.Traces = false, false
	doc = render(t, view.SessionDetail(frame("sessions"), p))
	require.Equal(t, 0, doc.Find(`[data-testid=rename-form]`).Length())
	require.Equal(t, 0, doc.Find(`[data-testid=trace-link]`).Length())
}

func TestSessionsListPagesAndSearch(t *testing.T) {
	rows := []store.Session{{ID: "a", Name: "alpha", Type: "agent", ComponentID: "calc", RunCount: 2, UpdatedAt: t0}}
	doc := render(t, view.SessionsPage(frame("sessions"), view.Sessions{Search: "al pha", Rows: rows, Page: 2, TotalPages: 3, Total: 41}))
	require.Equal(t, "al pha", doc.Find(`[data-testid=session-search]`).AttrOr("value", ""))
	require.Equal(t, "/ui/sessions?q=al+pha&page=1", doc.Find(`[data-testid=pager] a[rel=prev]`).AttrOr("href", ""))
	require.Equal(t, "/ui/sessions?q=al+pha&page=3", doc.Find(`[data-testid=pager] a[rel=next]`).AttrOr("href", ""))

	doc = render(t, view.SessionsPage(frame("sessions"), view.Sessions{}))
	require.Contains(t, doc.Find(`[data-testid=no-sessions]`).Text(), "No sessions yet")
}

func TestTraceWaterfallScalesAndHighlightsErrors(t *testing.T) {
	root := telemetry.Span{SpanID: "1", Name: "agent.run helpdesk", Kind: "run", Status: "ERROR", Start: t0, End: t0.Add(100 * time.Millisecond)}
	tool := telemetry.Span{SpanID: "2", ParentID: "1", Name: "tool calculator", Kind: "tool", Status: "ERROR", StatusMessage: "tool: boom",
		Start: t0.Add(25 * time.Millisecond), End: t0.Add(75 * time.Millisecond), Attributes: map[string]string{"tool.name": "calculator"}}
	p := view.TracePage{Summary: telemetry.TraceSummary{TraceID: "t", Name: root.Name, Status: "ERROR", ErrorCount: 2, TotalSpans: 2},
		Rows: []view.SpanRow{{Span: root, Width: 100}, {Span: tool, Depth: 1, Offset: 25, Width: 50, Attributes: [][2]string{{"tool.name", "calculator"}}}}}
	doc := render(t, view.TraceDetail(frame("traces"), p))
	bars := doc.Find(`[data-testid=span-bar]`)
	require.Equal(t, 2, bars.Length())
	require.Equal(t, "margin-left:25.000%;width:50.000%;", bars.Eq(1).AttrOr("style", ""))
	failed := doc.Find(`[data-testid=span].failed`)
	require.Equal(t, 2, failed.Length())
	require.Contains(t, failed.Eq(1).Find(`[data-testid=span-attrs]`).Text(), "tool: boom")
	require.Contains(t, failed.Eq(1).Find(`[data-testid=span-attrs]`).Text(), "tool.name")
}

func TestTracesPageWhenTracingIsOff(t *testing.T) {
	doc := render(t, view.TracesPage(frame("traces"), view.Traces{}))
	require.Contains(t, doc.Find(`[data-testid=tracing-off]`).Text(), "TROUPE_TRACES")
	doc = render(t, view.TracesPage(frame("traces"), view.Traces{Enabled: true, Targets: []string{"a", "b"}, Filter: view.TraceFilter{Target: "b", Status: "ERROR"}}))
	require.Equal(t, "b", doc.Find(`[data-testid=filter-target] option[selected]`).AttrOr("value", ""))
	require.Equal(t, "ERROR", doc.Find(`[data-testid=filter-status] option[selected]`).AttrOr("value", ""))
	require.Equal(t, 1, doc.Find(`[data-testid=no-traces]`).Length())
}

func inTable(t *testing.T, c templ.Component) *goquery.Document {
	return renderIn(t, c, "<table><tbody>", "</tbody></table>")
}

func TestDocRowPollsOnlyWhileProcessing(t *testing.T) {
	d := knowledge.Document{ID: "d1", Name: "guide.md", KnowledgeID: "docs", Status: knowledge.StatusProcessing, Progress: 0.5, Size: 2048}
	row := inTable(t, view.DocRow(d, true)).Find(`[data-testid=doc-row]`)
	require.Equal(t, "every 1s", row.AttrOr("hx-trigger", ""))
	require.Equal(t, "/ui/knowledge/docs/d1", row.AttrOr("hx-get", ""))
	require.Equal(t, "0.50", row.Find("progress").AttrOr("value", ""))

	d.Status, d.Chunks = knowledge.StatusCompleted, 4
	row = inTable(t, view.DocRow(d, true)).Find(`[data-testid=doc-row]`)
	require.False(t, row.Is("[hx-trigger]"), "a finished document stops polling")
	require.Equal(t, "completed", row.AttrOr("data-status", ""))
	require.Equal(t, 0, row.Find(`[data-testid=doc-retry]`).Length())

	d.Status = knowledge.StatusFailed
	row = inTable(t, view.DocRow(d, true)).Find(`[data-testid=doc-row]`)
	require.Equal(t, 1, row.Find(`[data-testid=doc-retry]`).Length())
	row = inTable(t, view.DocRow(d, false)).Find(`[data-testid=doc-row]`)
	require.Equal(t, 0, row.Find("button").Length(), "read-only keys see no actions")
}

func TestSearchResultsShowScores(t *testing.T) {
	hits := []knowledge.Hit{{Chunk: knowledge.Chunk{Document: "manual.pdf", KnowledgeID: "docs", Page: 2, Text: "Hybrid search combines"}, Score: 0.123456}}
	doc := render(t, view.SearchResults(view.SearchResult{Query: "hybrid", Mode: "hybrid", Hits: hits}))
	require.Equal(t, "0.1235", doc.Find(`[data-testid=hit-score]`).Text())
	require.Contains(t, doc.Find(`[data-testid=hit]`).Text(), "page 2")
	doc = render(t, view.SearchResults(view.SearchResult{Query: "zzz", Mode: "keyword"}))
	require.Contains(t, doc.Find(`[data-testid=no-hits]`).Text(), "zzz")
}

func TestKnowledgePageEmptyAndUpload(t *testing.T) {
	doc := render(t, view.KnowledgePage(frame("knowledge"), view.Knowledge{Enabled: true}))
	require.Contains(t, doc.Find(`[data-testid=no-knowledge]`).Text(), "kind: Knowledge")
	doc = render(t, view.KnowledgePage(frame("knowledge"), view.Knowledge{Enabled: true, CanWrite: true, MaxBytes: 50 << 20,
		Bases: []view.Base{{Name: "docs", Store: "embedded", Documents: 2}}}))
	require.Equal(t, "/ui/knowledge/upload", doc.Find(`[data-testid=upload-form]`).AttrOr("data-upload", ""))
	require.True(t, doc.Find(`[data-testid=upload-input]`).Is("[multiple]"))
	require.Contains(t, doc.Find(".drop-label").Text(), "50.0 MB")
}

func TestConfigPageGroupsObjectsByFile(t *testing.T) {
	c := view.Config{Dirs: []string{"agents.d"}, CanAdmin: true, Files: []view.ConfigFile{
		{Path: "agents.d/a.yaml", Objects: []view.ConfigObject{{Kind: "Agent", Name: "a", Status: "ok", Generation: 1}}},
		{Path: "agents.d/b.yaml", Objects: []view.ConfigObject{{Kind: "Agent", Name: "b", Status: "stale",
			Diagnostics: []view.Diagnostic{{Severity: "error", Text: "agents.d/b.yaml:3:8: agents.b.model: unknown model"}}}}},
		{Path: "agents.d/c.yaml", Failed: true, Diagnostics: []view.Diagnostic{{Severity: "error", Text: "agents.d/c.yaml:1:1: not YAML"}}},
	}}
	doc := render(t, view.ConfigPage(frame("config"), c))
	files := doc.Find(`[data-testid=file]`)
	require.Equal(t, 3, files.Length())
	require.Contains(t, files.Eq(0).Find("h2").Text(), "ok")
	require.Contains(t, files.Eq(1).Find("h2").Text(), "errors")
	require.Contains(t, files.Eq(1).Text(), "unknown model")
	require.Contains(t, files.Eq(2).Find("h2").Text(), "does not parse")
	require.Equal(t, 1, doc.Find(`[data-testid=reload]`).Length())
}

func TestProblemAndLogin(t *testing.T) {
	doc := render(t, view.ProblemPage(frame(""), view.Problem{Title: "Session not found", Message: "gone", Hint: "see Sessions"}))
	require.Equal(t, "Session not found", doc.Find(`[data-testid=problem] h1`).Text())
	f := frame("")
	f.AuthOn, f.KeyName = true, "#1"
	doc = render(t, view.LoginPage(f, view.Login{Error: "That key is not valid.", Next: "/ui/sessions"}))
	require.Equal(t, "password", doc.Find(`[data-testid=login-key]`).AttrOr("type", ""))
	require.Equal(t, "/ui/sessions", doc.Find(`input[name=next]`).AttrOr("value", ""))
	require.Equal(t, "That key is not valid.", doc.Find(`[data-testid=login-error]`).Text())
}
