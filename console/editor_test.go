package console_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// editorFile is GET /config/files/*path.
type editorFile struct {
	Path, Content, Hash string
}

type editorDiag struct {
	Path      string `json:"path"`
	Line      int    `json:"line"`
	Column    int    `json:"column"`
	EndLine   int    `json:"end_line"`
	EndColumn int    `json:"end_column"`
	Severity  string `json:"severity"`
	Message   string `json:"message"`
}

type editorSaved struct {
	Path         string `json:"path"`
	Hash         string `json:"hash"`
	PreviousHash string `json:"previous_hash"`
	Reload       struct {
		Generation  uint64       `json:"generation"`
		Success     bool         `json:"success"`
		Diagnostics []editorDiag `json:"diagnostics"`
	} `json:"reload"`
}

type editorConflict struct {
	Detail         string `json:"detail"`
	Path           string `json:"path"`
	CurrentHash    string `json:"current_hash"`
	CurrentContent string `json:"current_content"`
	Exists         bool   `json:"exists"`
}

type editorAudit struct {
	Data []struct {
		ID         int64     `json:"id"`
		At         time.Time `json:"at"`
		Actor      string    `json:"actor"`
		UserID     string    `json:"user_id"`
		Action     string    `json:"action"`
		Path       string    `json:"path"`
		FromPath   string    `json:"from_path"`
		HashBefore string    `json:"hash_before"`
		HashAfter  string    `json:"hash_after"`
		TraceID    string    `json:"trace_id"`
	} `json:"data"`
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

const greeterYAML = `kind: Agent
name: greeter
description: Greets.
model: echo
instructions: Greet.
tools: [calculator]
`

// TestEditorRoundTrip: read, check a broken buffer (a diagnostic where the
// loader puts it, with its message), check the fix clean, save it, and see
// the reload's new generation in the answer, in /config and in the agent.
func TestEditorRoundTrip(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "greeter.yaml"), []byte(greeterYAML), 0o640))
	ts.json(http.MethodPost, "/config/reload", adminKey, "", http.StatusOK, nil)

	var list struct {
		Files []struct {
			Path, Hash string
			Size       int64
		} `json:"files"`
		Templates []struct{ Kind, Title string } `json:"templates"`
	}
	ts.json(http.MethodGet, "/config/files", adminKey, "", http.StatusOK, &list)
	var paths []string
	for _, f := range list.Files {
		paths = append(paths, f.Path)
	}
	require.Equal(t, []string{"greeter.yaml", "specs.yaml"}, paths)
	require.Len(t, list.Templates, 5)

	var f editorFile
	ts.json(http.MethodGet, "/config/files/greeter.yaml", adminKey, "", http.StatusOK, &f)
	require.Equal(t, greeterYAML, f.Content)
	require.Equal(t, list.Files[0].Hash, f.Hash)
	require.Len(t, f.Hash, 64)

	// A typo in a tool name: an error at the name, with the loader's message.
	broken := strings.Replace(greeterYAML, "tools: [calculator]", "tools: [calculatr]", 1)
	var checked struct {
		Diagnostics []editorDiag `json:"diagnostics"`
	}
	ts.json(http.MethodPost, "/config/check", adminKey, jsonBody(t, map[string]string{"path": "greeter.yaml", "content": broken}), http.StatusOK, &checked)
	require.Len(t, checked.Diagnostics, 1, checked.Diagnostics)
	d := checked.Diagnostics[0]
	require.Equal(t, editorDiag{Path: "greeter.yaml", Line: 6, Column: 9, EndLine: 6, EndColumn: 18, Severity: "error", Message: d.Message}, d)
	require.Contains(t, d.Message, `"calculatr"`)
	require.Contains(t, d.Message, `did you mean "calculator"`)
	// An unknown key: underlined to its colon.
	ts.json(http.MethodPost, "/config/check", adminKey, jsonBody(t, map[string]string{"path": "greeter.yaml", "content": greeterYAML + "modle: echo\n"}), http.StatusOK, &checked)
	require.Len(t, checked.Diagnostics, 1, checked.Diagnostics)
	require.Equal(t, []int{7, 1, 7, 6}, []int{checked.Diagnostics[0].Line, checked.Diagnostics[0].Column, checked.Diagnostics[0].EndLine, checked.Diagnostics[0].EndColumn})
	// The check wrote nothing.
	onDisk, err := os.ReadFile(filepath.Join(ts.dir, "greeter.yaml"))
	require.NoError(t, err)
	require.Equal(t, greeterYAML, string(onDisk))

	fixed := strings.Replace(greeterYAML, "Greets.", "Greets warmly.", 1)
	status, body, _ := ts.do(http.MethodPost, "/config/check", adminKey, "application/json", jsonBody(t, map[string]string{"path": "greeter.yaml", "content": fixed}))
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"diagnostics":[]}`, body, "clean: an empty list, not null")

	before := ts.eng.Current().Generation()
	var saved editorSaved
	ts.json(http.MethodPut, "/config/files/greeter.yaml", adminKey, jsonBody(t, map[string]string{"content": fixed, "base_hash": f.Hash}), http.StatusOK, &saved)
	require.Equal(t, "greeter.yaml", saved.Path)
	require.Equal(t, f.Hash, saved.PreviousHash)
	require.NotEqual(t, f.Hash, saved.Hash)
	require.True(t, saved.Reload.Success)
	require.Equal(t, before+1, saved.Reload.Generation)
	require.Empty(t, saved.Reload.Diagnostics)

	onDisk, err = os.ReadFile(filepath.Join(ts.dir, "greeter.yaml"))
	require.NoError(t, err)
	require.Equal(t, fixed, string(onDisk))
	info, err := os.Stat(filepath.Join(ts.dir, "greeter.yaml"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), info.Mode().Perm(), "the file keeps its mode")

	var config struct {
		Reload struct {
			Generation uint64 `json:"generation"`
		} `json:"reload"`
	}
	ts.json(http.MethodGet, "/config", adminKey, "", http.StatusOK, &config)
	require.Equal(t, saved.Reload.Generation, config.Reload.Generation)
	var agent struct {
		Description string `json:"description"`
	}
	ts.json(http.MethodGet, "/agents/greeter", adminKey, "", http.StatusOK, &agent)
	require.Equal(t, "Greets warmly.", agent.Description)

	// Saving the same buffer again with the old hash is a conflict now.
	ts.json(http.MethodPut, "/config/files/greeter.yaml", adminKey, jsonBody(t, map[string]string{"content": fixed, "base_hash": f.Hash}), http.StatusConflict, nil)

	var audit editorAudit
	ts.json(http.MethodGet, "/config/audit?limit=5", adminKey, "", http.StatusOK, &audit)
	require.Len(t, audit.Data, 1)
	a := audit.Data[0]
	require.Equal(t, "#4", a.Actor)
	require.Equal(t, "update", a.Action)
	require.Equal(t, "greeter.yaml", a.Path)
	require.Equal(t, f.Hash, a.HashBefore)
	require.Equal(t, saved.Hash, a.HashAfter)
	require.Len(t, a.TraceID, 32)
	require.WithinDuration(t, time.Now(), a.At, time.Minute)
	// The write's span is recorded.
	require.Eventually(t, func() bool {
		tr, err := ts.traces.GetTrace(t.Context(), a.TraceID)
		return err == nil && len(tr) == 1 && tr[0].Kind == "editor" && tr[0].Attributes["editor.path"] == "greeter.yaml" &&
			tr[0].Attributes["editor.hash_after"] == saved.Hash
	}, 5*time.Second, 20*time.Millisecond)
}

// TestEditorConflict: a file changed on disk after the editor read it is
// not overwritten; the 409 carries what is on disk.
func TestEditorConflict(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "greeter.yaml"), []byte(greeterYAML), 0o644))
	var f editorFile
	ts.json(http.MethodGet, "/config/files/greeter.yaml", "", "", http.StatusOK, &f)

	changed := strings.Replace(greeterYAML, "Greet.", "Greet someone else.", 1)
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "greeter.yaml"), []byte(changed), 0o644))
	var c editorConflict
	ts.json(http.MethodPut, "/config/files/greeter.yaml", "", jsonBody(t, map[string]string{"content": "kind: Agent\nname: mine\nmodel: echo\n", "base_hash": f.Hash}), http.StatusConflict, &c)
	require.Equal(t, "greeter.yaml", c.Path)
	require.True(t, c.Exists)
	require.Equal(t, changed, c.CurrentContent)
	require.NotEqual(t, f.Hash, c.CurrentHash)
	require.Contains(t, c.Detail, "changed on disk")
	onDisk, err := os.ReadFile(filepath.Join(ts.dir, "greeter.yaml"))
	require.NoError(t, err)
	require.Equal(t, changed, string(onDisk), "never overwritten")

	// Deleted meanwhile: a conflict too, saying it no longer exists.
	require.NoError(t, os.Remove(filepath.Join(ts.dir, "greeter.yaml")))
	c = editorConflict{}
	ts.json(http.MethodPut, "/config/files/greeter.yaml", "", jsonBody(t, map[string]string{"content": greeterYAML, "base_hash": f.Hash}), http.StatusConflict, &c)
	require.False(t, c.Exists)
	require.Empty(t, c.CurrentHash)
	_, err = os.Stat(filepath.Join(ts.dir, "greeter.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)

	// Creating a file that exists: 409.
	ts.json(http.MethodPut, "/config/files/specs.yaml", "", jsonBody(t, map[string]string{"content": greeterYAML}), http.StatusConflict, &c)
	require.True(t, c.Exists)
	var audit editorAudit
	ts.json(http.MethodGet, "/config/audit", "", "", http.StatusOK, &audit)
	require.Empty(t, audit.Data, "refused writes are not writes")
}

// TestEditorCreateRenameDelete: a new agent from a template is served and
// runs; it is renamed into a sub-folder and deleted, each guarded by its
// hash, each audited.
func TestEditorCreateRenameDelete(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	var tpl struct{ Kind, Path, Content string }
	ts.json(http.MethodGet, "/config/templates/agent?name=scout", adminKey, "", http.StatusOK, &tpl)
	require.Equal(t, "agent", tpl.Kind)
	require.Equal(t, "scout.yaml", tpl.Path)
	require.Contains(t, tpl.Content, "name: scout\n")

	var saved editorSaved
	ts.json(http.MethodPut, "/config/files/"+tpl.Path, adminKey, jsonBody(t, map[string]string{"content": tpl.Content}), http.StatusOK, &saved)
	require.True(t, saved.Reload.Success)
	require.Empty(t, saved.PreviousHash)
	var run struct {
		Status  string `json:"status"`
		Content string `json:"content"`
	}
	ts.json(http.MethodPost, "/agents/scout/runs", adminKey, `{"message":"hello scout","stream":false}`, http.StatusOK, &run)
	require.Equal(t, "COMPLETED", run.Status)

	// Rename: a stale hash or an existing destination is a conflict.
	ts.json(http.MethodPost, "/config/rename", adminKey, jsonBody(t, map[string]string{"from": "scout.yaml", "to": "agents/scout.yaml", "base_hash": strings.Repeat("0", 64)}), http.StatusConflict, nil)
	ts.json(http.MethodPost, "/config/rename", adminKey, jsonBody(t, map[string]string{"from": "scout.yaml", "to": "specs.yaml", "base_hash": saved.Hash}), http.StatusConflict, nil)
	ts.json(http.MethodPost, "/config/rename", adminKey, jsonBody(t, map[string]string{"from": "scout.yaml", "to": "agents/scout.yaml"}), http.StatusBadRequest, nil)
	var renamed editorSaved
	ts.json(http.MethodPost, "/config/rename", adminKey, jsonBody(t, map[string]string{"from": "scout.yaml", "to": "agents/scout.yaml", "base_hash": saved.Hash}), http.StatusOK, &renamed)
	require.Equal(t, "agents/scout.yaml", renamed.Path)
	require.Equal(t, saved.Hash, renamed.Hash)
	_, err := os.Stat(filepath.Join(ts.dir, "scout.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	var f editorFile
	ts.json(http.MethodGet, "/config/files/agents/scout.yaml", adminKey, "", http.StatusOK, &f)
	require.Equal(t, tpl.Content, f.Content)
	var objects struct {
		Objects []struct{ Kind, Name, File string } `json:"objects"`
	}
	ts.json(http.MethodGet, "/config", adminKey, "", http.StatusOK, &objects)
	found := false
	for _, o := range objects.Objects {
		if o.Name == "scout" {
			found = true
			require.Equal(t, filepath.Join(ts.dir, "agents", "scout.yaml"), o.File)
		}
	}
	require.True(t, found)

	// Delete: the hash is required and must match.
	ts.json(http.MethodDelete, "/config/files/agents/scout.yaml", adminKey, "", http.StatusBadRequest, nil)
	ts.json(http.MethodDelete, "/config/files/agents/scout.yaml?base_hash="+strings.Repeat("0", 64), adminKey, "", http.StatusConflict, nil)
	var deleted editorSaved
	ts.json(http.MethodDelete, "/config/files/agents/scout.yaml?base_hash="+f.Hash, adminKey, "", http.StatusOK, &deleted)
	require.True(t, deleted.Reload.Success)
	ts.json(http.MethodGet, "/config/files/agents/scout.yaml", adminKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodGet, "/agents/scout", adminKey, "", http.StatusNotFound, nil)

	var audit editorAudit
	ts.json(http.MethodGet, "/config/audit", adminKey, "", http.StatusOK, &audit)
	var got [][4]string
	for _, a := range audit.Data {
		got = append(got, [4]string{a.Action, a.Path, a.FromPath, a.HashBefore + ">" + a.HashAfter})
	}
	require.Equal(t, [][4]string{
		{"delete", "agents/scout.yaml", "", f.Hash + ">"},
		{"rename", "agents/scout.yaml", "scout.yaml", saved.Hash + ">" + saved.Hash},
		{"create", "scout.yaml", "", ">" + saved.Hash},
	}, got)
}

// TestEditorConfinement: hostile paths are refused with 400 and nothing is
// read or written outside the spec folder.
func TestEditorConfinement(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	outside := filepath.Dir(ts.dir)
	secret := filepath.Join(t.TempDir(), "secret.yaml")
	require.NoError(t, os.WriteFile(secret, []byte("kind: Agent\nname: secret\nmodel: echo\n"), 0o644))
	require.NoError(t, os.Symlink(secret, filepath.Join(ts.dir, "link.yaml")))
	require.NoError(t, os.Symlink(filepath.Dir(secret), filepath.Join(ts.dir, "out")))
	before, err := os.ReadDir(outside)
	require.NoError(t, err)

	tests := []struct{ name, path string }{
		{"parent", "../x.yaml"},
		{"absolute", "/etc/passwd"},
		{"absolute yaml", "/tmp/x.yaml"},
		{"climbing", "a/../../x.yaml"},
		{"dot segment", "./x.yaml"},
		{"hidden", ".hidden.yaml"},
		{"hidden folder", ".git/x.yaml"},
		{"not yaml", "x.txt"},
		{"no extension", "x"},
		{"backslash", `a\x.yaml`},
		{"NUL", "x\x00.yaml"},
		{"empty segment", "a//x.yaml"},
		{"symlink out", "link.yaml"},
		{"symlinked folder out", "out/secret.yaml"},
		{"symlinked folder out, new file", "out/new.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := url.PathEscape(tt.path)
			p = strings.ReplaceAll(p, "%2F", "/")
			content := "kind: Agent\nname: pwned\nmodel: echo\n"
			for _, req := range []struct{ method, path, body string }{
				{http.MethodGet, "/config/files/" + p, ""},
				{http.MethodPut, "/config/files/" + p, jsonBody(t, map[string]string{"content": content})},
				{http.MethodPut, "/config/files/" + p, jsonBody(t, map[string]string{"content": content, "base_hash": strings.Repeat("0", 64)})},
				{http.MethodDelete, "/config/files/" + p + "?base_hash=" + strings.Repeat("0", 64), ""},
				{http.MethodPost, "/config/check", jsonBody(t, map[string]string{"path": tt.path, "content": content})},
				{http.MethodPost, "/config/rename", jsonBody(t, map[string]string{"from": "specs.yaml", "to": tt.path, "base_hash": strings.Repeat("0", 64)})},
				{http.MethodPost, "/config/rename", jsonBody(t, map[string]string{"from": tt.path, "to": "moved.yaml", "base_hash": strings.Repeat("0", 64)})},
			} {
				status, body, _ := ts.do(req.method, req.path, "", "application/json", req.body)
				if status == http.StatusNotFound && req.method != http.MethodPost && strings.Contains(body, "404 page not found") {
					continue // the router's own 404: a path the URL cannot carry (a cleaned "..")
				}
				require.Equal(t, http.StatusBadRequest, status, "%s %s: %s", req.method, req.path, body)
				var d struct{ Detail string }
				require.NoError(t, json.Unmarshal([]byte(body), &d), body)
				require.Contains(t, d.Detail, "is not allowed")
			}
		})
	}
	after, err := os.ReadDir(outside)
	require.NoError(t, err)
	require.Equal(t, len(before), len(after), "nothing written next to the spec folder")
	_, err = os.Stat(filepath.Join(filepath.Dir(secret), "new.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	data, err := os.ReadFile(secret)
	require.NoError(t, err)
	require.Equal(t, "kind: Agent\nname: secret\nmodel: echo\n", string(data))
	_, err = os.Stat(filepath.Join(ts.dir, "moved.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// editorRoutes are every route of the editor, relative to its base.
var editorRoutes = []struct {
	method, path, body string
	admin              int // what an admin key gets in the console
}{
	{http.MethodGet, "/files", "", http.StatusOK},
	{http.MethodGet, "/files/specs.yaml", "", http.StatusOK},
	{http.MethodPut, "/files/new.yaml", `{"content":"kind: Agent\nname: x\nmodel: echo\n"}`, http.StatusOK},
	{http.MethodDelete, "/files/specs.yaml?base_hash=00", "", http.StatusConflict},
	{http.MethodPost, "/check", `{"path":"specs.yaml","content":""}`, http.StatusOK},
	{http.MethodPost, "/rename", `{"from":"specs.yaml","to":"b.yaml","base_hash":"00"}`, http.StatusConflict},
	{http.MethodGet, "/templates/agent?name=x", "", http.StatusOK},
	{http.MethodGet, "/audit", "", http.StatusOK},
}

// TestEditorScope: only admin keys edit, on the API and in the console; the
// console's routes need the sign-in cookie and refuse cross-origin writes.
func TestEditorScope(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	for _, r := range editorRoutes {
		for _, key := range []string{aliceKey, readerKey} {
			status, body, _ := ts.do(r.method, "/config"+r.path, key, "application/json", r.body)
			require.Equal(t, http.StatusForbidden, status, "%s %s: %s", r.method, r.path, body)
		}
		status, _, _ := ts.do(r.method, "/config"+r.path, "", "application/json", r.body)
		require.Equal(t, http.StatusUnauthorized, status, r.path)

		page := func(cookie string, headers ...string) int {
			req, err := http.NewRequest(r.method, ts.url+"/ui/editor"+r.path, strings.NewReader(r.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			if cookie != "" {
				req.AddCookie(&http.Cookie{Name: "troupe_key", Value: cookie})
			}
			for i := 0; i+1 < len(headers); i += 2 {
				req.Header.Set(headers[i], headers[i+1])
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			return resp.StatusCode
		}
		if r.method == http.MethodGet {
			require.Equal(t, http.StatusSeeOther, page(""), "no cookie: to sign in (%s)", r.path)
		} else {
			require.Equal(t, http.StatusUnauthorized, page(""), r.path)
			require.Equal(t, http.StatusForbidden, page(adminKey, "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example"), "cross-origin %s %s", r.method, r.path)
		}
		require.Equal(t, http.StatusForbidden, page(aliceKey, "Sec-Fetch-Site", "same-origin"), "%s %s", r.method, r.path)
		require.Equal(t, r.admin, page(adminKey, "Sec-Fetch-Site", "same-origin"), "%s %s", r.method, r.path)
	}
	// Nothing was written by anyone refused.
	_, err := os.Stat(filepath.Join(ts.dir, "b.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)

	// The console's routes answer in the API's shapes.
	req, err := http.NewRequest(http.MethodGet, ts.url+"/ui/editor/files/specs.yaml", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "troupe_key", Value: adminKey})
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var f editorFile
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&f))
	require.Equal(t, "specs.yaml", f.Path)
	require.Len(t, f.Hash, 64)
}

// TestEditorTemplates: every template checks clean in the server's folder
// (the repository's agents.d: console/editor's tests); bad kinds and names
// are 400.
func TestEditorTemplates(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var list struct {
		Templates []struct{ Kind string } `json:"templates"`
	}
	ts.json(http.MethodGet, "/config/files", "", "", http.StatusOK, &list)
	require.Len(t, list.Templates, 5)
	for _, k := range list.Templates {
		var tpl struct{ Kind, Path, Content string }
		ts.json(http.MethodGet, "/config/templates/"+k.Kind+"?name=fresh-"+k.Kind, "", "", http.StatusOK, &tpl)
		require.Equal(t, "fresh-"+k.Kind+".yaml", tpl.Path)
		status, body, _ := ts.do(http.MethodPost, "/config/check", "", "application/json", jsonBody(t, map[string]string{"path": tpl.Path, "content": tpl.Content}))
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"diagnostics":[]}`, body, k.Kind)
	}
	for _, bad := range []string{"/config/templates/gadget?name=x", "/config/templates/agent?name=Bad%20Name", "/config/templates/agent?name=" + strings.Repeat("x", 60)} {
		ts.json(http.MethodGet, bad, "", "", http.StatusBadRequest, nil)
	}
}

// TestEditorSaveWithWatcher: the watcher's reload after a save finds the
// folder unchanged: one new generation per save, not two.
func TestEditorSaveWithWatcher(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withWatcher())
	var f editorFile
	ts.json(http.MethodGet, "/config/files/specs.yaml", "", "", http.StatusOK, &f)
	before := ts.eng.Current().Generation()
	var saved editorSaved
	content := f.Content + "---\nkind: Agent\nname: added\nmodel: echo\n"
	ts.json(http.MethodPut, "/config/files/specs.yaml", "", jsonBody(t, map[string]string{"content": content, "base_hash": f.Hash}), http.StatusOK, &saved)
	require.Equal(t, before+1, saved.Reload.Generation)
	// The watcher debounces and rescans; give it well over its delay.
	time.Sleep(700 * time.Millisecond)
	require.Equal(t, saved.Reload.Generation, ts.eng.Current().Generation())
	ts.json(http.MethodGet, "/agents/added", "", "", http.StatusOK, nil)
}

// TestEditorConcurrentSaves: saves racing from the same base hash: one
// wins, every other is a conflict, and the file holds the winner's content.
func TestEditorConcurrentSaves(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var f editorFile
	ts.json(http.MethodGet, "/config/files/specs.yaml", "", "", http.StatusOK, &f)
	const n = 8
	statuses := make([]int, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			content := f.Content + "# writer " + strconv.Itoa(i) + "\n"
			statuses[i], bodies[i], _ = ts.do(http.MethodPut, "/config/files/specs.yaml", "", "application/json", jsonBody(t, map[string]string{"content": content, "base_hash": f.Hash}))
		})
	}
	wg.Wait()
	winner := -1
	for i, s := range statuses {
		switch s {
		case http.StatusOK:
			require.Equal(t, -1, winner, "one save wins")
			winner = i
		default:
			require.Equal(t, http.StatusConflict, s, bodies[i])
		}
	}
	require.NotEqual(t, -1, winner)
	onDisk, err := os.ReadFile(filepath.Join(ts.dir, "specs.yaml"))
	require.NoError(t, err)
	require.Equal(t, f.Content+"# writer "+strconv.Itoa(winner)+"\n", string(onDisk))
	var audit editorAudit
	ts.json(http.MethodGet, "/config/audit", "", "", http.StatusOK, &audit)
	require.Len(t, audit.Data, 1)
	require.Equal(t, "open", audit.Data[0].Actor)
}

// TestEditorAuditOnPostgres: the editor's writes are audited in
// PostgreSQL as in SQLite, with the bound user of the key that wrote.
func TestEditorAuditOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("TROUPE_TEST_POSTGRES_DSN not set")
	}
	ts := startServer(t, withDatabase(pgSchema(t, dsn)), withKeys("sk-ops-0123456789abcdef=admin@ops"))
	const key = "sk-ops-0123456789abcdef"
	var saved editorSaved
	ts.json(http.MethodPut, "/config/files/teams/greeter.yaml", key, jsonBody(t, map[string]string{"content": greeterYAML}), http.StatusOK, &saved)
	require.True(t, saved.Reload.Success)
	var audit editorAudit
	ts.json(http.MethodGet, "/config/audit?limit=1", key, "", http.StatusOK, &audit)
	require.Len(t, audit.Data, 1)
	a := audit.Data[0]
	require.Equal(t, [6]string{"#1", "ops", "create", "teams/greeter.yaml", "", saved.Hash}, [6]string{a.Actor, a.UserID, a.Action, a.Path, a.HashBefore, a.HashAfter})
	ts.json(http.MethodGet, "/config/audit?limit=0", key, "", http.StatusBadRequest, nil)
}

// TestEditorOpenAPI: the editor's routes are in the OpenAPI document (and
// so on /docs), and their schemas list every field real answers carry.
func TestEditorOpenAPI(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
				Required   []string       `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	for path, methods := range map[string][]string{
		"/config/files": {"get"}, "/config/files/{path}": {"get", "put", "delete"}, "/config/check": {"post"},
		"/config/rename": {"post"}, "/config/templates/{kind}": {"get"}, "/config/audit": {"get"},
	} {
		for _, m := range methods {
			require.Contains(t, doc.Paths[path], m, "%s %s", m, path)
		}
	}

	var files, content, created, renamed, deleted, conflict, checked, tpl, audit map[string]any
	ts.json(http.MethodGet, "/config/files", "", "", http.StatusOK, &files)
	ts.json(http.MethodGet, "/config/files/specs.yaml", "", "", http.StatusOK, &content)
	ts.json(http.MethodPut, "/config/files/new.yaml", "", jsonBody(t, map[string]string{"content": greeterYAML}), http.StatusOK, &created)
	ts.json(http.MethodPut, "/config/files/new.yaml", "", jsonBody(t, map[string]string{"content": greeterYAML}), http.StatusConflict, &conflict)
	ts.json(http.MethodPost, "/config/rename", "", jsonBody(t, map[string]string{"from": "new.yaml", "to": "b/new.yaml", "base_hash": created["hash"].(string)}), http.StatusOK, &renamed)
	ts.json(http.MethodDelete, "/config/files/b/new.yaml?base_hash="+created["hash"].(string), "", "", http.StatusOK, &deleted)
	ts.json(http.MethodPost, "/config/check", "", jsonBody(t, map[string]string{"path": "x.yaml", "content": "kind: Agent\nname: x\n"}), http.StatusOK, &checked)
	ts.json(http.MethodGet, "/config/templates/team?name=t", "", "", http.StatusOK, &tpl)
	ts.json(http.MethodGet, "/config/audit", "", "", http.StatusOK, &audit)
	// A 409's body is described in words (the document has no error
	// schemas); its fields are the contract's.
	require.ElementsMatch(t, []string{"detail", "path", "current_hash", "current_content", "exists"}, slices.Collect(maps.Keys(conflict)))
	require.Equal(t, "", deleted["hash"])
	require.Equal(t, created["hash"], deleted["previous_hash"])
	tests := []struct {
		schema string
		body   map[string]any
	}{
		{"EditorFiles", files},
		{"EditorFile", files["files"].([]any)[0].(map[string]any)},
		{"EditorTemplateKind", files["templates"].([]any)[0].(map[string]any)},
		{"EditorContent", content},
		{"EditorSaved", created},
		{"EditorSaved", renamed},
		{"EditorSaved", deleted},
		{"EditorReload", created["reload"].(map[string]any)},
		{"EditorDiagnostics", checked},
		{"EditorDiagnostic", checked["diagnostics"].([]any)[0].(map[string]any)},
		{"EditorTemplate", tpl},
		{"EditorAuditList", audit},
		{"EditorAuditEntry", audit["data"].([]any)[0].(map[string]any)},
	}
	for _, tc := range tests {
		s, ok := doc.Components.Schemas[tc.schema]
		require.True(t, ok, tc.schema)
		for k := range tc.body {
			require.Contains(t, s.Properties, k, "%s has %s", tc.schema, k)
		}
		for _, k := range s.Required {
			require.Contains(t, tc.body, k, "%s always has %s", tc.schema, k)
		}
	}
}
