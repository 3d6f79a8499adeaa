package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// The editor's browser tests type into CodeMirror with real key events; the
// cursor is placed through the page's editor view (editorJS), as a click
// would, so the tests do not depend on pixel positions.

// editorJS is the page's CodeMirror view.
const editorJS = `document.getElementById("editor-page").editor`

// openEditor opens a file from the editor page and waits for its content.
func (b *browserTab) openEditor(path, want string) {
	b.t.Helper()
	b.open("/ui/editor?path="+path, "[data-testid=editor] .cm-content")
	b.until(fmt.Sprintf(`%s.state.doc.toString().includes(%q)`, editorJS, want), 10*time.Second)
}

// cursorAfter puts the cursor after the first occurrence of text and focuses
// the editor.
func (b *browserTab) cursorAfter(text string) {
	b.t.Helper()
	ok := evalAs[bool](b, fmt.Sprintf(`(() => { const v = %s, i = v.state.doc.toString().indexOf(%q);
		if (i < 0) return false; v.dispatch({selection: {anchor: i + %d}}); v.focus(); return true })()`, editorJS, text, len(text)))
	require.True(b.t, ok, "%q is not in the editor", text)
}

// insertAfter inserts text after the first occurrence of after, and puts
// the cursor at its end.
func (b *browserTab) insertAfter(after, text string) {
	b.t.Helper()
	ok := evalAs[bool](b, fmt.Sprintf(`(() => { const v = %s, i = v.state.doc.toString().indexOf(%q);
		if (i < 0) return false; const at = i + %d;
		v.dispatch({changes: {from: at, insert: %q}, selection: {anchor: at + %d}}); v.focus(); return true })()`, editorJS, after, len(after), text, len(text)))
	require.True(b.t, ok, "%q is not in the editor", after)
}

// typeKeys sends key events to the focused editor. Enter is a key press
// alone: chromedp follows every key down with a character event, which
// would insert a second line break after CodeMirror has handled the key
// (a browser sends none once the key down is handled).
func (b *browserTab) typeKeys(text string) {
	b.t.Helper()
	for i, part := range strings.Split(text, kb.Enter) {
		if i > 0 {
			b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				for _, k := range kb.Encode('\r') {
					if k.Type == kb.KeyChar {
						continue
					}
					if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, *k); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		if part != "" {
			b.do(chromedp.KeyEvent(part))
		}
	}
}

func (b *browserTab) buffer() string {
	b.t.Helper()
	return evalAs[string](b, editorJS+".state.doc.toString()")
}

// TestBrowserEditorDiagnosticsAndSave: from an agent's page to its file in
// the editor; a mistake typed there is underlined with the checker's message
// within 500 ms of the last keystroke; fixed and saved with Ctrl-S, the
// reload's new generation is reported on the page and on the overview.
func TestBrowserEditorDiagnosticsAndSave(t *testing.T) {
	ts := startServer(t)
	b := newBrowser(t, ts.url)
	var cfg struct {
		Reload struct {
			Generation uint64 `json:"generation"`
		} `json:"reload"`
	}
	ts.json(http.MethodGet, "/config", "", "", http.StatusOK, &cfg)
	before := cfg.Reload.Generation

	b.open("/ui/agents/helpdesk", "[data-testid=edit-file]")
	b.do(chromedp.Click(chromedp.CSS("[data-testid=edit-file]")), chromedp.WaitVisible(chromedp.CSS("[data-testid=editor] .cm-content")))
	b.until(editorJS+`.state.doc.toString().includes("name: helpdesk")`, 10*time.Second)
	require.Equal(t, "specs.yaml", b.text("[data-testid=editor-path]"))
	b.until(`document.getElementById("ed-problems").dataset.count === "0"`, 5*time.Second)

	// Time from the last keystroke to the underline, measured in the page.
	_ = evalAs[bool](b, `window.lastKey = 0; window.underlined = 0;
		document.addEventListener("keydown", () => { window.lastKey = performance.now(); window.underlined = 0;
			window.markedAtKey = document.querySelector(".cm-lintRange-error") !== null }, true);
		new MutationObserver(() => { if (window.lastKey && !window.underlined && document.querySelector(".cm-lintRange-error")) window.underlined = performance.now() })
			.observe(document.getElementById("ed-host"), {subtree: true, childList: true, attributes: true, characterData: true}); true`)
	b.cursorAfter("name: helpdesk\ndescription: Answers from the docs.\nmodel: echo")
	b.typeKeys("\rcolour: blue")
	b.until(`window.underlined > 0`, 5*time.Second)
	require.False(t, evalAs[bool](b, `window.markedAtKey`), "nothing was underlined before the last keystroke")
	took := evalAs[float64](b, `window.underlined - window.lastKey`)
	t.Logf("underlined %.0f ms after the last keystroke", took)
	require.Less(t, took, 500.0)
	require.Equal(t, "colour", evalAs[string](b, `document.querySelector(".cm-lintRange-error").textContent`))
	b.until(`document.querySelector("[data-testid=editor-problem]") !== null`, 2*time.Second)
	problem := b.text("[data-testid=editor-problem]")
	require.Contains(t, problem, "specs.yaml:")
	require.Contains(t, problem, "colour")
	message := problem[strings.Index(problem, ": ")+2:]
	require.True(t, evalAs[bool](b, `document.querySelector(".cm-lint-marker-error") !== null`), "a gutter marker")

	// Hovering the underline shows the same message.
	x := evalAs[float64](b, `(() => { const r = document.querySelector(".cm-lintRange-error").getBoundingClientRect(); return r.left + r.width / 2 })()`)
	y := evalAs[float64](b, `(() => { const r = document.querySelector(".cm-lintRange-error").getBoundingClientRect(); return r.top + r.height / 2 })()`)
	b.do(chromedp.MouseEvent(chromedp.MouseMoved, x, y))
	b.until(`document.querySelector(".cm-tooltip-lint") !== null`, 5*time.Second)
	require.Contains(t, b.text(".cm-tooltip-lint"), message)
	b.screenshot("underlined")

	// Fix it: the line becomes a valid key, and the problem goes.
	b.cursorAfter("colour: blue")
	b.typeKeys(strings.Repeat(kb.Backspace, len("colour: blue")) + "history: 3")
	b.until(`document.querySelector(".cm-lintRange-error") === null && document.getElementById("ed-problems").dataset.count === "0"`, 5*time.Second)

	// Ctrl-S with the focus outside the editor, on the file list.
	b.do(chromedp.Focus(chromedp.CSS("[data-testid=editor-file]")), chromedp.KeyEvent("s", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	b.until(`document.querySelector("[data-testid=editor-status]").dataset.generation !== undefined`, 10*time.Second)
	ts.json(http.MethodGet, "/config", "", "", http.StatusOK, &cfg)
	require.Greater(t, cfg.Reload.Generation, before, "the save reloaded")
	gen := fmt.Sprint(cfg.Reload.Generation)
	require.Equal(t, gen, evalAs[string](b, `document.querySelector("[data-testid=editor-status]").dataset.generation`))
	require.Contains(t, b.text("[data-testid=editor-status]"), "generation "+gen)
	require.NotContains(t, b.text("[data-testid=editor-path]"), "•", "saved: not modified any more")
	data, err := os.ReadFile(filepath.Join(ts.dir, "specs.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(data), "model: echo\nhistory: 3\n")
	b.screenshot("saved")

	b.open("/", "[data-testid=reload-card]")
	require.Contains(t, b.text("[data-testid=reload-card]"), "generation "+gen)
}

// TestBrowserEditorConflict: a file changed on disk while it is edited is
// not overwritten: saving shows the difference; "Load the disk version"
// takes theirs, "Keep mine" overwrites knowingly.
func TestBrowserEditorConflict(t *testing.T) {
	ts := startServer(t)
	b := newBrowser(t, ts.url)
	path := filepath.Join(ts.dir, "specs.yaml")
	b.openEditor("specs.yaml", "name: writer")

	original, err := os.ReadFile(path)
	require.NoError(t, err)
	theirs := strings.Replace(string(original), "instructions: Write.", "instructions: Write well.", 1)
	require.NoError(t, os.WriteFile(path, []byte(theirs), 0o644))

	b.cursorAfter("description: Writes.")
	b.typeKeys(" Mine.")
	b.do(chromedp.KeyEvent("s", chromedp.KeyModifiers(chromedp.ModifierCtrl))) // in the editor
	b.visible("[data-testid=editor-conflict]")
	time.Sleep(300 * time.Millisecond) // time for a second save, were there one
	require.Equal(t, 1, evalAs[int](b, `performance.getEntriesByType("resource").filter(e => e.initiatorType === "fetch" && e.name.endsWith("/ui/editor/files/specs.yaml")).length - 1`), "one save, not two")
	diff := b.text("[data-testid=editor-diff]")
	require.Contains(t, diff, "− instructions: Write well.")
	require.Contains(t, diff, "+ description: Writes. Mine.")
	require.Contains(t, diff, "− description: Writes.\n")
	require.Contains(t, diff, "  name: writer", "unchanged lines are shown as context")
	require.Contains(t, b.text("[data-testid=editor-status]"), "Not saved")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, theirs, string(data), "the file on disk is not overwritten")
	b.screenshot("conflict")

	b.click("[data-testid=editor-load-disk]")
	b.do(chromedp.WaitNotVisible(chromedp.CSS("[data-testid=editor-conflict]")))
	require.Equal(t, theirs, b.buffer())

	// Again, and this time keep mine.
	changed := strings.Replace(theirs, "mode: route", "mode: broadcast", 1)
	require.NoError(t, os.WriteFile(path, []byte(changed), 0o644))
	b.cursorAfter("instructions: Write well.")
	b.typeKeys(" Mine.")
	b.click("[data-testid=editor-save]")
	b.visible("[data-testid=editor-conflict]")
	require.Contains(t, b.text("[data-testid=editor-diff]"), "− mode: broadcast")
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, changed, string(data))
	mine := b.buffer()
	b.click("[data-testid=editor-keep-mine]")
	b.do(chromedp.WaitNotVisible(chromedp.CSS("[data-testid=editor-conflict]")))
	b.until(`document.querySelector("[data-testid=editor-status]").textContent.startsWith("Saved")`, 10*time.Second)
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, mine, string(data))
	require.Contains(t, string(data), "instructions: Write well. Mine.\n")
}

// TestBrowserEditorNewAgent: a new agent from the template, named in the
// page and saved, is served.
func TestBrowserEditorNewAgent(t *testing.T) {
	ts := startServer(t)
	b := newBrowser(t, ts.url)
	b.open("/ui/config", "[data-testid=new-agent]")
	b.click("[data-testid=new-agent]")
	b.visible("[data-testid=editor-new-name]")
	b.keys("[data-testid=editor-new-name]", "scribe"+kb.Enter)
	b.until(editorJS+`.state.doc.toString().includes("scribe")`, 10*time.Second)
	require.Contains(t, b.buffer(), "kind: Agent")
	file := strings.TrimSuffix(b.text("[data-testid=editor-path]"), " •") // • while not saved
	require.Contains(t, file, "scribe")
	b.until(`document.getElementById("ed-problems").dataset.count === "0"`, 5*time.Second)
	b.click("[data-testid=editor-save]")
	b.until(`document.querySelector("[data-testid=editor-status]").textContent.startsWith("Created")`, 10*time.Second)
	require.Contains(t, b.text("[data-testid=editor-status]"), "Reloaded: generation")
	_, err := os.Stat(filepath.Join(ts.dir, filepath.FromSlash(file)))
	require.NoError(t, err)

	var agents []struct {
		ID string `json:"id"`
	}
	ts.json(http.MethodGet, "/agents", "", "", http.StatusOK, &agents)
	var ids []string
	for _, a := range agents {
		ids = append(ids, a.ID)
	}
	require.Contains(t, ids, "scribe")
	// The file list has it, and the agent's page links back to it.
	b.until(`[...document.querySelectorAll("[data-testid=editor-file]")].some(a => a.dataset.path === `+strconv.Quote(file)+`)`, 5*time.Second)
	require.Equal(t, "/ui/editor?path="+url.QueryEscape(file), evalAs[string](b, `location.pathname + location.search`), "the address is the file's, for reloads and links")
	b.open("/ui/agents/scribe", "[data-testid=edit-file]")
}

// TestBrowserEditorCompletion: keys and enum values from the JSON Schema,
// at the cursor's place in the YAML, with the schema's descriptions.
func TestBrowserEditorCompletion(t *testing.T) {
	ts := startServer(t)
	b := newBrowser(t, ts.url)
	b.openEditor("specs.yaml", "name: helpdesk")
	labels := `[...document.querySelectorAll(".cm-tooltip-autocomplete .cm-completionLabel")].map(e => e.textContent)`

	// A key of the Agent document the cursor is in. The lines around are
	// inserted as they are (typing them would add the editor's indentation);
	// the partial keys are typed.
	b.insertAfter("knowledge: [docs]", "\n")
	b.typeKeys("guardr")
	b.until(`document.querySelector(".cm-tooltip-autocomplete") !== null`, 5*time.Second)
	require.Equal(t, []string{"guardrails"}, evalAs[[]string](b, labels))
	b.until(`document.querySelector(".cm-completionInfo") !== null`, 5*time.Second)
	require.Contains(t, b.text(".cm-completionInfo"), "Checks on the user message")
	time.Sleep(100 * time.Millisecond) // CodeMirror takes Enter as a choice 75 ms after the list opens
	b.typeKeys(kb.Enter)
	require.Contains(t, b.buffer(), "knowledge: [docs]\nguardrails: ")

	// Nested: a list item's keys, two levels down.
	b.insertAfter("guardrails: ", "\n  input:\n    - ")
	b.typeKeys("pi")
	b.until(`document.querySelector(".cm-tooltip-autocomplete") !== null`, 5*time.Second)
	require.Contains(t, evalAs[[]string](b, labels), "pii")
	b.typeKeys(kb.Escape)

	// Enum values: a Team's mode.
	b.cursorAfter("mode: route")
	b.typeKeys(strings.Repeat(kb.Backspace, len("route")) + "b")
	b.until(`document.querySelector(".cm-tooltip-autocomplete") !== null`, 5*time.Second)
	require.Equal(t, []string{"broadcast"}, evalAs[[]string](b, labels))
	b.screenshot("completion")
	b.typeKeys(kb.Escape)

	// Keys the mapping already has are not offered again: the writer agent
	// has model and instructions, so they are left out at its root while
	// other keys that match what is typed are offered.
	open := `document.querySelector(".cm-tooltip-autocomplete") !== null`
	b.insertAfter("instructions: Write.", "\n")
	b.typeKeys("mo")
	b.until(open, 5*time.Second)
	got := evalAs[[]string](b, labels)
	require.NotContains(t, got, "model")
	require.Contains(t, got, "memory")
	b.typeKeys(kb.Escape + strings.Repeat(kb.Backspace, len("mo")) + "ins")
	b.until(open, 5*time.Second)
	got = evalAs[[]string](b, labels)
	require.NotContains(t, got, "instructions")
	require.Contains(t, got, "session_state")
	b.typeKeys(kb.Escape + strings.Repeat(kb.Backspace, len("ins")))

	// In a list of mappings each item is its own mapping: the second step
	// is offered agent although the first step has one, but not its own
	// name again.
	b.insertAfter("members: [writer]", "\n---\nkind: Workflow\nname: flow\nsteps:\n  - name: one\n    agent: writer\n  - name: two\n    ")
	b.typeKeys("ag")
	b.until(open, 5*time.Second)
	require.Equal(t, []string{"agent"}, evalAs[[]string](b, labels))
	// Asked for every key (Ctrl-Space on the empty line): all but name.
	b.typeKeys(kb.Escape + strings.Repeat(kb.Backspace, len("ag")))
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, k := range kb.Encode(' ') {
			if k.Type == kb.KeyChar {
				continue // CodeMirror handles the key down; the character would add a space
			}
			k.Modifiers = int64(chromedp.ModifierCtrl)
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, *k); err != nil {
				return err
			}
		}
		return nil
	}))
	b.until(open, 5*time.Second)
	got = evalAs[[]string](b, labels)
	require.NotContains(t, got, "name")
	require.Subset(t, got, []string{"agent", "team", "input", "condition"})
}

// TestBrowserEditorRenameAndDelete: rename a file from the page, then
// delete it after confirming; what it defined stops being served, and a
// problem in another file links to that file.
func TestBrowserEditorRenameAndDelete(t *testing.T) {
	ts := startServer(t)
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "extra.yaml"), []byte("kind: Agent\nname: extra\nmodel: echo\n"), 0o644))
	ts.json(http.MethodPost, "/config/reload", "", "", http.StatusOK, nil)
	b := newBrowser(t, ts.url)
	b.openEditor("extra.yaml", "name: extra")

	b.click("[data-testid=editor-rename]")
	b.visible("[data-testid=editor-rename-to]")
	b.do(chromedp.SetValue(chromedp.CSS("[data-testid=editor-rename-to]"), "agents/extra.yaml"))
	b.click("[data-testid=editor-rename-submit]")
	b.until(`document.querySelector("[data-testid=editor-status]").textContent.startsWith("Renamed extra.yaml to agents/extra.yaml.")`, 10*time.Second)
	require.Equal(t, "agents/extra.yaml", b.text("[data-testid=editor-path]"))
	require.Equal(t, "/ui/editor?path="+url.QueryEscape("agents/extra.yaml"), evalAs[string](b, `location.pathname + location.search`))
	_, err := os.Stat(filepath.Join(ts.dir, "extra.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	data, err := os.ReadFile(filepath.Join(ts.dir, "agents", "extra.yaml"))
	require.NoError(t, err)
	require.Equal(t, "kind: Agent\nname: extra\nmodel: echo\n", string(data))

	// Saved with a mistake: written, reloaded, and the page says what is
	// not served.
	b.cursorAfter("model: echo")
	b.typeKeys("\rtools: [calculater]")
	b.until(`document.querySelector(".cm-lintRange-error") !== null`, 5*time.Second)
	b.click("[data-testid=editor-save]")
	b.until(`document.querySelector("[data-testid=editor-status]").textContent.startsWith("Saved agents/extra.yaml. Reloaded: generation")`, 10*time.Second)
	status := b.text("[data-testid=editor-status]")
	require.Contains(t, status, "1 error keeps objects from being served")
	require.Contains(t, status, "agents/extra.yaml:4:9: ")
	require.Contains(t, status, `did you mean "calculator"`)
	b.cursorAfter("calculater]")
	b.typeKeys(strings.Repeat(kb.Backspace, len("\rtools: [calculater]")))
	b.click("[data-testid=editor-save]")
	b.until(`document.querySelector("[data-testid=editor-status]").className === "ed-status ok"`, 10*time.Second)

	// A problem the buffer causes in another file is listed with a link to
	// that file: a second agent named helpdesk clashes with specs.yaml's.
	b.insertAfter("model: echo\n", "---\nkind: Agent\nname: helpdesk\nmodel: echo\n")
	b.until(`[...document.querySelectorAll("[data-testid=editor-problem] a")].some(a => a.getAttribute("href") === "/ui/editor?path=specs.yaml")`, 5*time.Second)
	b.typeKeys(kb.Escape)
	_ = evalAs[bool](b, editorJS+`.dispatch({changes: {from: 0, to: `+editorJS+`.state.doc.length, insert: "kind: Agent\nname: extra\nmodel: echo\n"}}) || true`)
	b.until(`document.getElementById("ed-problems").dataset.count === "0"`, 5*time.Second)

	b.click("[data-testid=editor-delete]")
	b.visible("[data-testid=editor-delete-confirm]")
	require.Equal(t, "agents/extra.yaml", b.text("#ed-delete-name"))
	b.click("[data-testid=editor-delete-confirm]")
	b.until(`document.querySelector("[data-testid=editor-status]").textContent.startsWith("Deleted agents/extra.yaml.")`, 10*time.Second)
	_, err = os.Stat(filepath.Join(ts.dir, "agents", "extra.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	b.visible("[data-testid=editor-empty]")
	require.False(t, evalAs[bool](b, `[...document.querySelectorAll("[data-testid=editor-file]")].some(a => a.dataset.path.includes("extra"))`))
	var agents []struct {
		ID string `json:"id"`
	}
	ts.json(http.MethodGet, "/agents", "", "", http.StatusOK, &agents)
	for _, a := range agents {
		require.NotEqual(t, "extra", a.ID)
	}
}

// TestBrowserEditorIgnoresStaleChecks: a check answered after a newer one
// (here the first is held back in the page) does not bring back problems
// that were already fixed.
func TestBrowserEditorIgnoresStaleChecks(t *testing.T) {
	ts := startServer(t)
	b := newBrowser(t, ts.url)
	b.openEditor("specs.yaml", "name: helpdesk")
	b.until(`document.getElementById("ed-problems").dataset.count === "0"`, 5*time.Second)
	_ = evalAs[bool](b, `window.held = 0; window.late = false; const realFetch = window.fetch;
		window.fetch = (u, o) => String(u).endsWith("/ui/editor/check") && window.held++ === 0
			? new Promise(r => setTimeout(() => { window.late = true; r(realFetch(u, o)) }, 800))
			: realFetch(u, o); true`)
	b.cursorAfter("description: Answers from the docs.\nmodel: echo")
	b.typeKeys("\rcolour: blue")
	b.until(`window.held === 1`, 5*time.Second) // the check of the mistake is sent, and held
	b.typeKeys(strings.Repeat(kb.Backspace, len("\rcolour: blue")))
	b.until(`window.held === 2`, 5*time.Second)
	b.until(`window.late`, 5*time.Second)
	time.Sleep(200 * time.Millisecond) // the held answer has arrived and been read
	require.Equal(t, "0", evalAs[string](b, `document.getElementById("ed-problems").dataset.count`))
	require.False(t, evalAs[bool](b, `document.querySelector(".cm-lintRange-error") !== null`))
}
