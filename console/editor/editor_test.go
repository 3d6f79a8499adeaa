package editor_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/editor"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/echo"
	"github.com/troupehq/troupe/engine/model/openai"
	"github.com/troupehq/troupe/engine/tool/mcp"
)

// noEnv is an environment without variables: no keys, no TROUPE_MODEL.
func noEnv(string) (string, bool) { return "", false }

// newEditor is an editor over dirs, with an engine built as troupe serve
// builds it (its model vendors and default tools), without a reload loop:
// checks only.
func newEditor(t testing.TB, dirs ...string) *editor.Service {
	t.Helper()
	reg := model.NewRegistry()
	for _, name := range []string{"openai", "ollama", "anthropic"} {
		reg.Register(name, func(c model.Config) (model.Provider, error) {
			return openai.New(openai.Options{Name: name, BaseURL: c.BaseURL, APIKey: c.APIKey}), nil
		})
	}
	reg.Register(echo.Name, echo.New)
	pool := mcp.NewPool(mcp.Options{ClientName: "troupe"})
	t.Cleanup(func() { _ = pool.Close() })
	rt := &engine.Runtime{Models: reg, Env: noEnv, Tools: engine.DefaultTools(engine.ToolOptions{MCP: pool})}
	eng, err := engine.New(engine.Options{Dirs: dirs, Env: noEnv, Runtime: rt})
	require.NoError(t, err)
	t.Cleanup(eng.Close)
	return editor.New(editor.Options{Engine: eng})
}

// TestTemplatesCheckClean: every template, with a name filled in, checks
// clean on its own (an empty folder) and next to the repository's examples,
// and adds no diagnostic to any other file.
func TestTemplatesCheckClean(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{t.TempDir(), "../../agents.d"} {
		ed := newEditor(t, dir)
		for _, tpl := range editor.Templates {
			t.Run(tpl.Kind+" in "+filepath.Base(dir), func(t *testing.T) {
				f, err := ed.Template(tpl.Kind, "fresh-"+tpl.Kind)
				require.NoError(t, err)
				require.Equal(t, "fresh-"+tpl.Kind+".yaml", f.Path)
				require.Contains(t, f.Content, "name: fresh-"+tpl.Kind+"\n")
				ds, err := ed.Check(f.Path, []byte(f.Content))
				require.NoError(t, err)
				require.Empty(t, ds)
			})
		}
	}
}

// TestCheckPositions: diagnostics point at the offending token of the
// buffer, and an error in one file is reported with that file's path even
// when another file is checked.
func TestCheckPositions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "teams"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "teams", "crew.yaml"), []byte("kind: Team\nname: crew\nmode: route\nmodel: echo\nmembers: [helper]\n"), 0o644))
	ed := newEditor(t, dir)
	// A broken member breaks its team, whose document is underlined from
	// its first key.
	crewBroken := editor.Diagnostic{Path: "teams/crew.yaml", Line: 1, Column: 1, EndLine: 1, EndColumn: 5, Severity: "error"}

	tests := []struct {
		name, content string
		want          []editor.Diagnostic
	}{
		{"clean", "kind: Agent\nname: helper\nmodel: echo\n", []editor.Diagnostic{}},
		{"unknown key", "kind: Agent\nname: helper\nmodel: echo\ninstruction: hi\n", []editor.Diagnostic{
			{Path: "helper.yaml", Line: 4, Column: 1, EndLine: 4, EndColumn: 12, Severity: "error"}, crewBroken}},
		{"bad enum in a flow list", "kind: Agent\nname: helper\nmodel: echo\ntools: [current_time, calculater]\n", []editor.Diagnostic{
			{Path: "helper.yaml", Line: 4, Column: 23, EndLine: 4, EndColumn: 33, Severity: "error"}, crewBroken}},
		{"quoted value", "kind: Agent\nname: helper\nmodel: \"nope/x y\"\n", nil},
		{"syntax error", "kind: Agent\nname: [helper\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := ed.Check("helper.yaml", []byte(tt.content))
			require.NoError(t, err)
			if tt.want == nil {
				require.NotEmpty(t, ds)
				for _, d := range ds {
					require.GreaterOrEqual(t, d.Line, 1)
					require.GreaterOrEqual(t, d.Column, 1)
					require.True(t, d.EndLine > d.Line || d.EndColumn > d.Column, "%+v", d)
					require.NotEmpty(t, d.Message)
				}
				return
			}
			for i := range ds {
				require.NotEmpty(t, ds[i].Message)
				ds[i].Message, ds[i].Object = "", ""
			}
			require.Equal(t, tt.want, ds)
		})
	}

	// Without the agent the team is broken: its file's diagnostic, with its
	// path, comes back when another file is checked.
	ds, err := ed.Check("other.yaml", []byte("kind: Agent\nname: other\nmodel: echo\n"))
	require.NoError(t, err)
	require.NotEmpty(t, ds)
	for _, d := range ds {
		require.Equal(t, "teams/crew.yaml", d.Path)
		require.Contains(t, d.Message, "helper")
	}
}

// TestSeveralFolders: with several spec folders, a path starts with its
// folder's base name, made unique.
func TestSeveralFolders(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a, b, c := filepath.Join(root, "x", "specs"), filepath.Join(root, "y", "specs"), filepath.Join(root, "more")
	for i, d := range []string{a, b, c} {
		require.NoError(t, os.MkdirAll(d, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(d, "a.yaml"), []byte("kind: Agent\nname: a"+strings.Repeat("x", i)+"\nmodel: echo\n"), 0o644))
	}
	ed := newEditor(t, a, b, c)
	files, err := ed.Files()
	require.NoError(t, err)
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	require.Equal(t, []string{"more/a.yaml", "specs-2/a.yaml", "specs/a.yaml"}, paths)
	got, err := ed.Read("specs-2/a.yaml")
	require.NoError(t, err)
	require.Contains(t, got.Content, "name: ax\n")
	_, err = ed.Read("a.yaml")
	require.ErrorContains(t, err, "starts with one's name: specs, specs-2, more")
	ds, err := ed.Check("more/a.yaml", []byte("kind: Agent\nname: a\nmodel: echo\n"))
	require.NoError(t, err)
	require.Len(t, ds, 2, "the name is taken in specs/a.yaml")
	for _, d := range ds {
		require.Contains(t, []string{"more/a.yaml", "specs/a.yaml"}, d.Path)
	}
	tpl, err := ed.Template("agent", "")
	require.NoError(t, err)
	require.Equal(t, "specs/new-agent.yaml", tpl.Path)

	// The pages' Edit links name files the same way.
	for file, want := range map[string]string{
		filepath.Join(b, "a.yaml"):         "specs-2/a.yaml",
		filepath.Join(c, "sub", "x.yaml"):  "more/sub/x.yaml",
		filepath.Join(root, "x", "a.yaml"): "",
		c:                                  "",
	} {
		got, ok := ed.EditorPath(file)
		require.Equal(t, want, got, file)
		require.Equal(t, want != "", ok, file)
	}
}

// BenchmarkEditorCheck measures a check of a buffer as the browser sends
// it on each pause in typing, against the repository's agents.d: the
// reload's loader (unchanged files from its cache) and compiler.
func BenchmarkEditorCheck(b *testing.B) {
	ed := newEditor(b, "../../agents.d")
	data, err := os.ReadFile("../../agents.d/hello.yaml")
	require.NoError(b, err)
	buf := []byte(strings.Replace(string(data), "friendly", "cheerful", 1))
	for b.Loop() {
		ds, err := ed.Check("hello.yaml", buf)
		if err != nil || len(ds) != 0 {
			b.Fatal(err, ds)
		}
	}
}
