package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model/fake"
)

// The browser tests drive the console in a real Chromium (Debian's package,
// which .ci/run installs) through the DevTools protocol, against the real
// server with the fixture specs, the echo model and the OpenAI-wire vendor.

// chromium finds a Chromium binary: TROUPE_TEST_CHROMIUM, else the usual names.
func chromium() string {
	if p := os.Getenv("TROUPE_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

type browserTab struct {
	t   *testing.T
	ctx context.Context
	url string
}

// newBrowser starts a headless Chromium at 1280×800 with a fresh profile.
func newBrowser(t *testing.T, baseURL string) *browserTab {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("no Chromium found: install Debian's chromium package (apt-get install chromium) or set TROUPE_TEST_CHROMIUM")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first action starts the browser, whose life is that action's context.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)), "starting Chromium")
	return &browserTab{t: t, ctx: ctx, url: baseURL}
}

// do runs actions, each step bounded so a broken page fails fast.
func (b *browserTab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.screenshot("failure")
		require.NoError(b.t, err)
	}
}

func (b *browserTab) open(path, waitFor string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.url+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

func (b *browserTab) click(sel string) { b.t.Helper(); b.do(chromedp.Click(chromedp.CSS(sel))) }

func (b *browserTab) keys(sel, text string) {
	b.t.Helper()
	b.do(chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (b *browserTab) visible(sel string) { b.t.Helper(); b.do(chromedp.WaitVisible(chromedp.CSS(sel))) }

// until waits for a JavaScript expression to become truthy. It evaluates
// again after errors, which happen while the page navigates.
func (b *browserTab) until(expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.screenshot("timeout")
			html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			b.t.Fatalf("waiting for %s (last error %v)\n%s", expr, err, html)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func evalAs[T any](b *browserTab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(b.t, err, expr)
	return v
}

func (b *browserTab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return s
}

// screenshot saves the whole page under the test's temp dir.
func (b *browserTab) screenshot(name string) {
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(90))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	dirs := []string{b.t.TempDir()}
	if keep := os.Getenv("TROUPE_TEST_SCREENSHOTS"); keep != "" {
		dirs = append(dirs, keep) // outlives the test, for people to look at
	}
	for _, dir := range dirs {
		path := filepath.Join(dir, strings.ReplaceAll(b.t.Name(), "/", "_")+"-"+name+".png")
		if err := os.WriteFile(path, png, 0o644); err == nil {
			b.t.Logf("screenshot: %s", path)
		}
	}
}

func TestBrowserOverviewWithSignIn(t *testing.T) {
	ts := startServer(t, withKeys("sk-admin-0123456789abcdef=admin"))
	b := newBrowser(t, ts.url)

	b.open("/", "[data-testid=login-key]") // no cookie yet: the sign-in page
	b.keys("[data-testid=login-key]", "sk-wrong-key-0123456789")
	b.click("[data-testid=login-submit]")
	b.visible("[data-testid=login-error]")
	b.keys("[data-testid=login-key]", "sk-admin-0123456789abcdef")
	b.click("[data-testid=login-submit]")
	b.visible("[data-testid=overview]")

	cookies := evalAs[string](b, "document.cookie")
	require.NotContains(t, cookies, "troupe_key", "the key cookie is HttpOnly")
	require.Contains(t, b.text("[data-testid=count-Agent]"), "3")
	require.Contains(t, b.text("[data-testid=count-Team]"), "1")
	require.Contains(t, b.text("[data-testid=reload-card]"), "generation 1")
	b.do(chromedp.WaitVisible(chromedp.CSS("[data-testid=activity-chart] svg")))
	require.Contains(t, b.text("[data-testid=no-runs]"), "No runs yet")
	b.screenshot("overview")

	// Signed in, the chat's fetch and htmx's posts carry the cookie and pass
	// the same-origin check.
	b.open("/ui/agents/helpdesk", "[data-testid=chat-input]")
	b.keys("#chat-input", "hello with a key"+kb.Enter)
	b.until(`document.querySelector("#transcript [data-testid=usage]") !== null`, 20*time.Second)
	require.Contains(t, b.text("#transcript [data-testid=usage]"), "COMPLETED")
	require.Equal(t, "key #1", b.text("header [data-testid=key-name]"), "who is signed in")
	// The icon the pages link, and the one browsers ask for by habit.
	_ = evalAs[bool](b, `Promise.all([fetch(document.querySelector("link[rel=icon]").href), fetch("/favicon.ico")])
		.then(rs => { window.icons = rs.map(r => r.status + " " + r.headers.get("content-type")) }); true`)
	b.until(`window.icons && window.icons.join() === "200 image/svg+xml,200 image/svg+xml"`, 5*time.Second)
	b.open("/", "[data-testid=activity-chart]")
	ticks := evalAs[[]string](b, `[...document.querySelectorAll("[data-testid=chart-tick]")].map(e => e.textContent)`)
	require.GreaterOrEqual(t, len(ticks), 3, "a time label every quarter hour: %v", ticks)
	require.Regexp(t, `^\d\d:(00|15|30|45)$`, ticks[0])
	require.Equal(t, "1", b.text("[data-testid=chart-ymax]"))
	b.open("/ui/config", "[data-testid=reload]")
	b.click("[data-testid=reload]")
	b.until(`document.querySelector("[data-testid=flash]") !== null`, 10*time.Second)
	require.Contains(t, b.text("[data-testid=flash]"), "Reloaded")

	// Every page fits a phone's width without sideways scrolling.
	b.do(chromedp.EmulateViewport(390, 844))
	addWorkflows(t, ts, "sk-admin-0123456789abcdef")
	runPage := pipelineRunPage(t, ts, "sk-admin-0123456789abcdef")
	for _, p := range []string{"/", "/ui/agents", "/ui/agents/helpdesk", "/ui/sessions", "/ui/traces", "/ui/knowledge", "/ui/queue", "/ui/triggers", "/ui/config", "/ui/workflows", "/ui/workflows/pipeline", runPage, "/ui/spend", "/ui/budgets", "/ui/approvals", "/ui/editor?path=specs.yaml"} {
		b.open(p, "main")
		fits := evalAs[bool](b, "document.documentElement.scrollWidth <= window.innerWidth + 1")
		if !fits {
			wide := evalAs[[]string](b, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`)
			t.Fatalf("%s overflows a 390 px wide screen: %v", p, wide)
		}
	}
	b.screenshot("narrow")
}

func TestBrowserChatSessionAndTrace(t *testing.T) {
	ts := startServer(t)
	b := newBrowser(t, ts.url)

	b.open("/ui/agents", "[data-testid=target-helpdesk]")
	b.do(chromedp.Click(chromedp.CSS("[data-testid=target-helpdesk] [data-testid=target-link]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=chat-input]")))
	require.Contains(t, evalAs[string](b, `document.querySelector("[data-testid=resolved-yaml]").textContent`), "knowledge_search")
	require.Contains(t, b.text("[data-testid=demo-model]"), "demo model")

	// Count DOM changes inside the answer to see it arrive in pieces.
	_ = evalAs[bool](b, `window.changes = 0; new MutationObserver(ms => {
			window.changes += ms.filter(m => (m.target.nodeType === 1 ? m.target : m.target.parentElement).closest("[data-testid=answer]")).length })
		.observe(document.getElementById("transcript"), {subtree: true, childList: true, characterData: true}); true`)
	// The keyboard is enough: type and press Enter.
	b.do(chromedp.Focus(chromedp.CSS("#chat-input")),
		chromedp.SendKeys(chromedp.CSS("#chat-input"), `/call calculator {"expression": "6*7"}`+kb.Enter))
	b.until(`document.querySelector("#transcript [data-testid=usage]") !== null`, 20*time.Second)

	tools := evalAs[[]string](b, `[...document.querySelectorAll("#transcript [data-testid=tool-name]")].map(e => e.textContent)`)
	require.Contains(t, tools, "calculator")
	result := evalAs[string](b, `[...document.querySelectorAll("#transcript [data-testid=tool-card]")].find(c => c.querySelector("[data-testid=tool-name]").textContent === "calculator").querySelector("[data-testid=tool-result]").textContent`)
	require.Equal(t, "42", strings.TrimSpace(result))
	answer := b.text("#transcript [data-testid=answer]")
	require.Contains(t, answer, "42")
	require.True(t, evalAs[bool](b, `document.querySelector("#transcript [data-testid=answer].md > p") !== null`), "the complete answer is Markdown")
	changes := evalAs[int](b, "window.changes")
	require.Greater(t, changes, 1, "the answer streamed in pieces, not at once")
	require.GreaterOrEqual(t, changes, len(strings.Fields(answer)), "a piece per word")
	require.Contains(t, b.text("#transcript [data-testid=usage]"), "COMPLETED")

	sessionID := evalAs[string](b, `document.getElementById("chat-session").value`)
	require.NotEmpty(t, sessionID)
	b.do(chromedp.SendKeys(chromedp.CSS("#chat-input"), "thank you"+kb.Enter))
	b.until(`document.querySelectorAll("#transcript [data-testid=usage]").length === 2`, 20*time.Second)
	sameSession := evalAs[string](b, `document.getElementById("chat-session").value`)
	require.Equal(t, sessionID, sameSession, "the second message continues the session")
	b.screenshot("chat")

	// A fresh page load finds the session, with its transcript.
	b.open("/ui/sessions", "[data-testid=session-link]")
	rows := evalAs[int](b, `document.querySelectorAll("[data-testid=session-row]").length`)
	require.Equal(t, 1, rows)
	b.do(chromedp.Click(chromedp.CSS("[data-testid=session-link]")), chromedp.WaitVisible(chromedp.CSS("[data-testid=session-transcript]")))
	transcript := b.text("[data-testid=session-transcript]")
	require.Contains(t, transcript, `/call calculator`)
	require.Contains(t, transcript, "thank you")
	turns := evalAs[int](b, `document.querySelectorAll("[data-testid=session-transcript] [data-testid=turn]").length`)
	require.Equal(t, 2, turns)
	b.screenshot("session")

	// Its first run's trace: a waterfall with the tool call.
	b.do(chromedp.Click(chromedp.CSS("[data-testid=session-transcript] [data-testid=trace-link]")))
	b.until(`document.querySelector("[data-testid=waterfall]") !== null || document.querySelector("[data-testid=problem]") !== null`, 10*time.Second)
	for range 50 { // spans are flushed within ~100 ms of the run's end
		found := evalAs[bool](b, `document.querySelector("[data-testid=waterfall]") !== null`)
		if found {
			break
		}
		time.Sleep(100 * time.Millisecond)
		b.do(chromedp.Reload())
	}
	spans := evalAs[[]string](b, `[...document.querySelectorAll("[data-testid=span] .span-name")].map(e => e.textContent)`)
	require.GreaterOrEqual(t, len(spans), 3, "%v", spans)
	require.Contains(t, strings.Join(spans, " "), "calculator")
	widths := evalAs[[]string](b, `[...document.querySelectorAll("[data-testid=span-bar]")].map(e => e.style.width)`)
	require.Equal(t, "100%", widths[0], "the root spans the whole trace")
	b.do(chromedp.Click(chromedp.CSS("[data-testid=span] summary")), chromedp.WaitVisible(chromedp.CSS("[data-testid=span-attrs]")))
	require.Contains(t, b.text("[data-testid=span-attrs]"), "kind")
	b.screenshot("trace")
}

func TestBrowserTeamChatAndCancel(t *testing.T) {
	ts := startServer(t)
	b := newBrowser(t, ts.url)

	b.open("/ui/teams/crew", "[data-testid=chat-input]")
	b.do(chromedp.SendKeys(chromedp.CSS("#chat-input"), "hello team"+kb.Enter))
	b.until(`document.querySelector("#transcript [data-testid=usage]") !== null`, 20*time.Second)
	require.Contains(t, b.text("#transcript [data-testid=member-run] summary"), "writer")
	require.Contains(t, b.text("#transcript [data-testid=member-run] .answer"), "user=hello team", "the member's answer streamed into its block")
	b.screenshot("team")

	// The vendor holds a "block" request open until the client goes away.
	b.open("/ui/agents/writer", "[data-testid=chat-input]")
	b.do(chromedp.SendKeys(chromedp.CSS("#chat-input"), "please block"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=chat-cancel]")))
	b.until(`document.querySelector("#transcript [data-testid=turn]") !== null`, 10*time.Second)
	b.do(chromedp.Click(chromedp.CSS("[data-testid=chat-cancel]")))
	b.until(`document.querySelector("#transcript [data-testid=usage]") !== null`, 10*time.Second)
	require.Contains(t, b.text("#transcript [data-testid=usage]"), "CANCELLED")
	b.do(chromedp.WaitNotVisible(chromedp.CSS("[data-testid=chat-cancel]")))
}

func TestBrowserKnowledgeUploadAndSearch(t *testing.T) {
	ts := startServer(t)
	b := newBrowser(t, ts.url)
	md := filepath.Join(t.TempDir(), "flux.md")
	require.NoError(t, os.WriteFile(md, []byte("# Flux capacitor\n\nThe flux capacitor needs 1.21 gigawatts of power to travel through time.\n\n## Storage\n\nKeep it dry and away from plutonium.\n"), 0o644))
	pdf, err := filepath.Abs("../engine/knowledge/reader/testdata/manual.pdf")
	require.NoError(t, err)

	b.open("/ui/knowledge", "[data-testid=upload-input]")
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#up-files"), []string{md, pdf}))
	b.until(`document.querySelectorAll("[data-testid=upload]").length === 2`, 10*time.Second)
	b.until(`document.querySelectorAll("[data-testid=doc-row][data-status=completed]").length === 2`, 60*time.Second)
	b.until(`document.querySelector("[data-testid=no-documents]") === null`, 5*time.Second)
	b.until(`document.querySelector("[data-testid=doc-count]").textContent === "2"`, 5*time.Second)
	require.Contains(t, b.text("[data-testid=bases]"), "2", "the base's document count follows")
	// Done: no progress bars left, and the summary counted again when the
	// rows finished (no "processing" left from the first count).
	b.until(`document.querySelector("[data-testid=base-processing]") === null`, 5*time.Second)
	require.Equal(t, "2", strings.TrimSpace(b.text("[data-testid=base-docs] [data-testid=base-documents]")))
	require.Zero(t, evalAs[int](b, `document.querySelectorAll("progress").length`))
	names := b.text("[data-testid=documents]")
	require.Contains(t, names, "flux.md")
	require.Contains(t, names, "manual.pdf")
	b.screenshot("uploaded")

	search := func(query, mode string) string {
		b.do(chromedp.SetValue(chromedp.CSS("#s-q"), query), chromedp.SetValue(chromedp.CSS("#s-mode"), mode),
			chromedp.Click(chromedp.CSS("[data-testid=search-submit]")))
		b.until(fmt.Sprintf(`(document.querySelector("#search-results").textContent || "").includes(%q)`, "("+mode+")"), 10*time.Second)
		b.until(`document.querySelector("[data-testid=hit]") !== null`, 10*time.Second)
		return b.text("[data-testid=hit]") // the best hit
	}
	require.Contains(t, search("gigawatts", "keyword"), "1.21 gigawatts")
	best := search("hybrid search combines vector similarity with keyword ranking", "hybrid")
	require.Contains(t, best, "manual.pdf")
	require.Contains(t, best, "Hybrid search combines")
	require.Contains(t, search("flux capacitor power", "vector"), "flux.md")
	score := evalAs[string](b, `document.querySelector("[data-testid=hit-score]").textContent`)
	require.Regexp(t, `^\d+\.\d{4}$`, score)
	b.screenshot("search")
}

// TestBrowserKnowledgeSyncNow clicks a base's "Sync now" on the knowledge
// page (htmx, no script of ours) and reads what the sync found.
func TestBrowserKnowledgeSyncNow(t *testing.T) {
	ts := startServer(t, withSpecs(handbookKB))
	dir := filepath.Join(ts.dir, "handbook")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "parking.md"), []byte("# Parking\n\nPermits are renewed every April.\n"), 0o644))
	require.Eventually(t, func() bool { return len(handbookDocs(t, ts)) == 1 }, 5*time.Second, 20*time.Millisecond, "the watch ingests the new file")
	b := newBrowser(t, ts.url)
	b.open("/ui/knowledge", "[data-testid=sync-now]")
	b.do(chromedp.SetValue(chromedp.CSS("#sync-kb"), "handbook"))
	b.click("[data-testid=sync-now]")
	b.until(`(document.querySelector("[data-testid=sync-result]").textContent || "").includes("Synced")`, 10*time.Second)
	require.Equal(t, "Synced handbook: 0 added, 0 updated, 0 deleted, 1 unchanged.", strings.TrimSpace(b.text("[data-testid=sync-result]")))
	require.Contains(t, b.text("[data-testid=documents]"), "parking.md")
	b.screenshot("synced")
}

func TestBrowserConfigShowsBrokenFileWithoutReload(t *testing.T) {
	ts := startServer(t, withWatcher())
	b := newBrowser(t, ts.url)
	b.open("/ui/config", "[data-testid=config]")
	b.until(`window.htmx !== undefined`, 5*time.Second)
	_ = evalAs[bool](b, `window.notReloaded = true`)
	require.NotContains(t, b.text("[data-testid=config]"), "broken.yaml")

	path := filepath.Join(ts.dir, "broken.yaml")
	require.NoError(t, os.WriteFile(path, []byte("kind: Agent\nname: broken\nmodel: echo\ntools: [calculater]\n"), 0o644))
	b.until(`[...document.querySelectorAll("[data-testid=diagnostic]")].some(d => d.textContent.includes("broken.yaml:4:9"))`, 10*time.Second)
	require.Contains(t, b.text("[data-testid=config]"), `did you mean "calculator"`)
	same := evalAs[bool](b, `window.notReloaded === true`)
	require.True(t, same, "the diagnostic arrived without a page reload")
	b.screenshot("broken")

	require.NoError(t, os.WriteFile(path, []byte("kind: Agent\nname: broken\nmodel: echo\ntools: [calculator]\n"), 0o644))
	b.until(`![...document.querySelectorAll("[data-testid=diagnostic]")].some(d => d.textContent.includes("broken.yaml"))`, 10*time.Second)
	b.until(`document.querySelector("[data-testid=object-broken] .badge").textContent === "ok"`, 5*time.Second)
}

// TestBrowserWorkflowRunLive runs a workflow from its page and watches its
// steps complete live: the model holds the second step until the test
// releases it, so the first step is seen COMPLETED and the second RUNNING
// (in its row and in the graph) while the run is still going. Then the run
// page shows each step's output, and an approval is given with its button.
func TestBrowserWorkflowRunLive(t *testing.T) {
	ts, m := startRunner(t)
	b := newBrowser(t, ts.url)

	b.open("/ui/workflows/gated", "[data-testid=run-form]")
	b.do(chromedp.SendKeys(chromedp.CSS("#chat-input"), "go"))
	b.click("[data-testid=run-send]")
	b.until(`document.querySelector("#transcript tr[data-step=held][data-status=RUNNING]") !== null`, 20*time.Second)
	require.Equal(t, "COMPLETED", evalAs[string](b, `document.querySelector("#transcript tr[data-step=first]").dataset.status`))
	require.Contains(t, b.text("#transcript tr[data-step=first] [data-testid=step-output]"), "did first go")
	require.Equal(t, "RUNNING", evalAs[string](b, `document.querySelector("[data-testid=workflow-graph] g[data-step=held]").dataset.status`))
	require.Equal(t, "COMPLETED", evalAs[string](b, `document.querySelector("[data-testid=workflow-graph] g[data-step=first]").dataset.status`))
	require.False(t, evalAs[bool](b, `document.querySelector("#transcript [data-testid=usage]") !== null`), "the workflow has not ended")
	require.True(t, evalAs[bool](b, `!document.querySelector("[data-testid=chat-cancel]").hidden`), "a running workflow can be cancelled")
	b.screenshot("running")

	close(m.release)
	b.until(`document.querySelector("#transcript [data-testid=usage]") !== null`, 20*time.Second)
	require.Contains(t, b.text("#transcript [data-testid=usage] .badge"), "COMPLETED")
	require.Equal(t, "did last go", b.text("#transcript [data-testid=run-output]"))
	require.Equal(t, "COMPLETED", evalAs[string](b, `document.querySelector("[data-testid=workflow-graph] g[data-step=last]").dataset.status`))

	b.click("[data-testid=run-page-link]")
	b.visible("[data-testid=workflow-run-page]")
	for step, out := range map[string]string{"first": "did first go", "held": "did hold go", "last": "did last go"} {
		require.Equal(t, out, b.text("[data-testid=step-run][data-path="+step+"] [data-testid=step-output]"), step)
	}

	// A typed form, a pause at the approval step, Approve.
	b.open("/ui/workflows/approve", "[data-testid=run-form]")
	b.do(chromedp.SendKeys(chromedp.CSS("#f-topic"), "owls"))
	b.click("#f-urgent")
	b.click("[data-testid=run-send]")
	b.until(`document.querySelector("#transcript [data-testid=usage]") !== null`, 20*time.Second)
	require.Equal(t, "PAUSED", b.text("#transcript [data-testid=usage] .badge"))
	require.Contains(t, b.text("#transcript tr[data-step=ok]"), "waiting for approval")
	b.do(chromedp.SendKeys(chromedp.CSS("[data-testid=approval-comment]"), "lgtm"))
	b.click("[data-testid=approve]")
	b.until(`document.querySelector("[data-testid=workflow-run-page][data-status=COMPLETED]") !== null`, 20*time.Second)
	require.Equal(t, "did publish lgtm", b.text("[data-testid=step-run][data-path=publish] [data-testid=step-output]"))
	require.Equal(t, "COMPLETED", evalAs[string](b, `document.querySelector("[data-testid=workflow-graph] g[data-step=ok]").dataset.status`))
}

// TestBrowserApprovalInboxAndPausedChat: a chat pauses on a tool that needs
// approval and shows the held call; the inbox shows it with the live count
// in the navigation; approving there finishes the run and the count drops
// without a reload. Then a second chat is approved inline, its answer
// streaming into the same turn.
func TestBrowserApprovalInboxAndPausedChat(t *testing.T) {
	script := fake.New(askRefund(500), askRefund(600))
	script.Repeat = &fake.Step{Content: "refund done"}
	ts := startServer(t, withProvider("anthropic", script), withSpecs(fmt.Sprintf(inboxSpecs, startUpstream(t), "1h")))
	b := newBrowser(t, ts.url)

	b.open("/ui/agents/clerk", "[data-testid=chat-input]")
	b.keys("#chat-input", "refund order A500"+kb.Enter)
	b.until(`document.querySelector("#transcript [data-testid=held]") !== null`, 20*time.Second)
	require.Equal(t, "refund", b.text("#transcript [data-testid=held-tool]"))
	require.Equal(t, "Refund of 500 for A500", b.text("#transcript [data-testid=held-reason]"))
	require.Contains(t, b.text("#transcript [data-testid=held-args]"), `"amount": 500`)
	require.Contains(t, b.text("#transcript [data-testid=usage]"), "PAUSED")
	b.visible("#transcript [data-testid=held-approve]")
	sessionID := evalAs[string](b, `document.getElementById("chat-session").value`)
	require.NotEmpty(t, sessionID)
	b.screenshot("paused-chat")

	// The inbox, in the same browser: the badge counts it.
	b.click("[data-testid=nav-approvals]")
	b.visible("[data-testid=approval] [data-testid=approve]")
	b.until(`document.querySelector("[data-testid=approval-count]").dataset.count === "1"`, 10*time.Second)
	require.Equal(t, "1", b.text("[data-testid=approval-count]"))
	require.Equal(t, "refund order A500", b.text("[data-testid=approval-message]"))
	_ = evalAs[bool](b, `window.stayed = true`)
	b.keys("[data-testid=approval-comment]", "ok by me")
	b.click("[data-testid=approval] [data-testid=approve]")
	b.until(`document.querySelector("[data-testid=approval]").dataset.status === "approved"`, 10*time.Second)
	require.Contains(t, b.text("[data-testid=approval-decided]"), "ok by me")
	b.until(`document.querySelector("[data-testid=approval-count]").dataset.count === "0"`, 10*time.Second)
	require.True(t, evalAs[bool](b, `window.stayed === true`), "the row and the badge changed without a reload")
	const polls = `performance.getEntriesByType("resource").filter(e => e.name.endsWith("/ui/approvals/count")).length`
	before := evalAs[int](b, polls)
	time.Sleep(1500 * time.Millisecond)
	require.LessOrEqual(t, evalAs[int](b, polls)-before, 1, "the badge polls every few seconds, not in a loop")
	b.screenshot("inbox")

	// The run went on by itself: the session shows the final answer.
	b.open("/ui/sessions/"+sessionID, "main")
	b.until(`document.querySelector("main").textContent.includes("refund done")`, 20*time.Second)

	// Inline: approving in the chat pane streams the rest of the answer
	// into the same turn.
	b.open("/ui/agents/clerk", "[data-testid=chat-input]")
	b.keys("#chat-input", "refund order A600"+kb.Enter)
	b.until(`document.querySelector("#transcript [data-testid=held-approve]") !== null`, 20*time.Second)
	b.click("#transcript [data-testid=held-approve]")
	b.until(`document.querySelector("#transcript [data-testid=held-decided]") !== null`, 20*time.Second)
	b.until(`document.querySelector("#transcript [data-testid=answer]").textContent.includes("refund done")`, 20*time.Second)
	b.until(`[...document.querySelectorAll("#transcript [data-testid=usage]")].some(u => u.textContent.includes("COMPLETED"))`, 20*time.Second)
	require.Equal(t, 1, evalAs[int](b, `document.querySelectorAll("#transcript [data-testid=turn]").length`), "one turn, continued in place")
	require.Contains(t, b.text("#transcript [data-testid=held-decided]"), "Approved by")
	b.screenshot("inline")

	// The inbox fits a phone.
	b.do(chromedp.EmulateViewport(390, 844))
	b.open("/ui/approvals?status=all", "[data-testid=approval]")
	require.True(t, evalAs[bool](b, "document.documentElement.scrollWidth <= window.innerWidth + 1"), "the inbox overflows a 390 px wide screen")
}
