package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/engine/tool/builtin"
	"github.com/troupehq/troupe/spec"
)

// TestSpecBuiltinsFromRegistry proves the spec's builtin tools are the
// registry's: the default registry's builtins are exactly its Builtin
// modules, every example in agents.d checks clean and matches the schema
// made from them, and a builtin added to a registry (here a test uuid
// tool, one module) is accepted by the spec and runs, with no other change.
func TestSpecBuiltinsFromRegistry(t *testing.T) {
	t.Parallel()
	reg := engine.DefaultTools(engine.ToolOptions{})
	var names []string
	for _, typ := range reg.Types() {
		if m, _ := reg.Module(typ); m.Builtin {
			names = append(names, typ)
		}
	}
	var got []string
	for _, b := range reg.Builtins() {
		got = append(got, b.Name)
	}
	require.Equal(t, names, got)
	// A subset, not the whole list: adding a builtin must not edit this test.
	require.Subset(t, got, []string{"current_time", "calculator", "http_fetch", "knowledge_search"})

	// agents.d checks clean with the registry's builtins, as troupe check runs.
	set, err := spec.NewLoader(spec.LoaderOptions{Env: noEnv, BuiltinTools: reg.Builtins()}).Load("../agents.d")
	require.NoError(t, err)
	require.Empty(t, set.Diagnostics())
	var doc any
	require.NoError(t, json.Unmarshal(spec.SchemaJSON(reg.Builtins()), &doc))
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource(spec.SchemaID, doc))
	sch, err := c.Compile(spec.SchemaID)
	require.NoError(t, err)
	files, err := spec.SpecFiles("../agents.d")
	require.NoError(t, err)
	for _, path := range files {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var v any
			if dec.Decode(&v) != nil {
				break
			}
			b, err := json.Marshal(v)
			require.NoError(t, err)
			var j any
			require.NoError(t, json.Unmarshal(b, &j))
			require.NoError(t, sch.Validate(j), path)
		}
	}

	// A registry with one more builtin: the spec accepts it by name and the
	// agent calls it.
	mods := append(builtin.Modules(builtin.Options{}), tool.Module{Type: "uuid", Builtin: true,
		New: func(context.Context, *spec.Tool, tool.Deps) (tool.Tool, error) {
			return fixedTool{name: "uuid", out: "0190-test"}, nil
		}})
	f := newFolder(t)
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: openai/gpt-test\ntools: [uuid]\n")
	p := fake.New(fake.Step{ToolCalls: []model.ToolCall{{ID: "1", Name: "uuid", Arguments: `{}`}}}, fake.Step{Content: "done"})
	rt := fakeRuntime(p)
	rt.Tools = tool.NewRegistry(mods...)
	e := f.runtimeEngine(rt)
	defer e.Close()
	require.Empty(t, e.Current().Diagnostics())
	res, _, err := e.Execute(t.Context(), spec.KindAgent, "a", agent.Input{Message: "id?", RunID: "r"}, func(event.Event) {})
	require.NoError(t, err)
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	require.Len(t, res.Tools, 1)
	require.Equal(t, "0190-test", res.Tools[0].Result)

	// Without it in the registry the same folder is an error with a position.
	e2 := f.runtimeEngine(fakeRuntime(p))
	defer e2.Close()
	require.Equal(t, fmt.Sprintf("%s:4:9: agents.a.tools[0]: unknown tool \"uuid\"", filepath.Join(f.dir, "a.yaml")), e2.Current().Diagnostics().Errors()[0].Error())
}

// TestToolDocumentConfiguresBuiltin runs http_fetch configured by a Tool
// document (allowed_hosts reaching a loopback server) next to the builtin by
// name, whose defaults still refuse loopback.
func TestToolDocumentConfiguresBuiltin(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("wiki page"))
	}))
	defer srv.Close()
	f := newFolder(t)
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: openai/gpt-test\ntools: [intranet_fetch, http_fetch]\n")
	f.write("tool.yaml", "kind: Tool\nname: intranet_fetch\ndescription: Reads the intranet.\ntype: http_fetch\nallowed_hosts: [127.0.0.1]\ntimeout: 5s\n")
	p := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{
			{ID: "1", Name: "intranet_fetch", Arguments: fmt.Sprintf(`{"url": %q}`, srv.URL)},
			{ID: "2", Name: "http_fetch", Arguments: fmt.Sprintf(`{"url": %q}`, srv.URL)},
		}},
		fake.Step{Content: "done"},
	)
	rt := fakeRuntime(p)
	e := f.runtimeEngine(rt)
	defer e.Close()
	require.Empty(t, e.Current().Diagnostics())
	a, ok := e.Current().Agent("a")
	require.True(t, ok)
	require.Equal(t, []engine.ToolRef{
		{Name: "intranet_fetch", Spec: e.Current().Agents()[0].Tools[0].Spec},
		{Name: "http_fetch", Builtin: true},
	}, a.Tools)
	require.Equal(t, "http_fetch", a.Tools[0].Spec.Type)

	// The configured instance is offered under its document's name and
	// description, next to the builtin's own.
	res, _, err := e.Execute(t.Context(), spec.KindAgent, "a", agent.Input{Message: "read", RunID: "r"}, func(event.Event) {})
	require.NoError(t, err)
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	defs := p.Requests()[0].Tools
	require.Len(t, defs, 2)
	require.Equal(t, "intranet_fetch", defs[0].Name)
	require.Equal(t, "Reads the intranet.", defs[0].Description)
	require.Equal(t, "http_fetch", defs[1].Name)
	require.Len(t, res.Tools, 2)
	require.False(t, res.Tools[0].Error, res.Tools[0].Result)
	require.Contains(t, res.Tools[0].Result, "wiki page")
	require.True(t, res.Tools[1].Error)
	require.Contains(t, res.Tools[1].Result, "loopback addresses are blocked")
}

// TestToolModuleLifecycle checks the registry's reuse and cleanup rules over
// reloads: an instance of a module without Cleanup outlives snapshots while
// its document is unchanged; one with Cleanup is cleaned up when its snapshot
// retires.
func TestToolModuleLifecycle(t *testing.T) {
	t.Parallel()
	var built, cleaned atomic.Int32
	reg := tool.NewRegistry(
		tool.Module{Type: spec.ToolHTTP, New: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Tool, error) {
			built.Add(1)
			return fixedTool{name: s.Name, out: "ok"}, nil
		}},
		tool.Module{Type: spec.ToolMCP,
			NewToolset: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Toolset, error) {
				built.Add(100)
				return fixedToolset{fixedTool{name: s.Name, out: "ok"}}, nil
			},
			Cleanup: func(any) { cleaned.Add(1) }},
	)
	f := newFolder(t)
	f.write("tools.yaml", "kind: Tool\nname: h\ntype: http\nurl: https://example.com/x\n---\nkind: Tool\nname: m\ntype: mcp\ncommand: unused\n")
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: echo\ntools: [h, m]\n")
	rt := fakeRuntime(nil)
	rt.Tools = reg
	e := f.runtimeEngine(rt)
	defer e.Close()
	require.Empty(t, e.Current().Diagnostics())
	require.EqualValues(t, 101, built.Load())

	f.write("a.yaml", "kind: Agent\nname: a\nmodel: echo\ntools: [h, m]\ninstructions: v2\n")
	require.True(t, e.Load().Changed)
	require.EqualValues(t, 201, built.Load(), "the http instance is reused, the mcp one built again")
	require.Eventually(t, func() bool { return cleaned.Load() == 1 }, 5e9, 1e7, "the old snapshot's mcp instance is cleaned up")
}

// TestToolModuleValidate shows a module's Validate hook as a diagnostic at the
// Tool document's field; the agent using it is broken, the others serve.
func TestToolModuleValidate(t *testing.T) {
	t.Parallel()
	reg := tool.NewRegistry(tool.Module{Type: spec.ToolHTTP,
		New: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Tool, error) {
			return fixedTool{name: s.Name}, nil
		},
		Validate: func(s *spec.Tool) error {
			if len(s.AllowedHosts) == 0 {
				return &tool.FieldError{Field: "url", Err: errors.New("this registry requires allowed_hosts")}
			}
			return nil
		}})
	f := newFolder(t)
	f.write("tools.yaml", "kind: Tool\nname: h\ntype: http\nurl: https://example.com/x\n")
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: echo\ntools: [h]\n---\nkind: Agent\nname: b\nmodel: echo\n")
	rt := fakeRuntime(nil)
	rt.Tools = reg
	e := f.runtimeEngine(rt)
	defer e.Close()
	require.Equal(t, []string{filepath.Join(f.dir, "tools.yaml") + ":4:6: tools.h.url: tool h: url: this registry requires allowed_hosts"}, diagTexts(e.Current().Diagnostics()))
	_, ok := e.Current().Agent("a")
	require.False(t, ok)
	_, ok = e.Current().Agent("b")
	require.True(t, ok)
}

func diagTexts(ds spec.Diagnostics) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Error())
	}
	return out
}

func TestRegistryRejectsWiringMistakes(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, *spec.Tool, tool.Deps) (tool.Tool, error) { return nil, nil }
	tests := []struct {
		name string
		mods []tool.Module
	}{
		{name: "duplicate type", mods: []tool.Module{{Type: "x", New: ok}, {Type: "x", New: ok}}},
		{name: "empty type", mods: []tool.Module{{New: ok}}},
		{name: "no factory", mods: []tool.Module{{Type: "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Panics(t, func() { tool.NewRegistry(tt.mods...) })
		})
	}
	_, err := tool.NewRegistry(tool.Module{Type: "x", New: ok}).Lookup(&spec.Tool{Meta: spec.Meta{Name: "t"}, Type: "y"})
	require.EqualError(t, err, `tool t: no tool type "y" in this process (types: x)`)
}

type fixedTool struct{ name, out string }

func (f fixedTool) Def() model.ToolDef {
	return model.ToolDef{Name: f.name, Parameters: map[string]any{"type": "object", "properties": map[string]any{}}}
}

func (f fixedTool) Call(context.Context, json.RawMessage) (string, error) { return f.out, nil }

type fixedToolset []tool.Tool

func (f fixedToolset) Tools(context.Context) ([]tool.Tool, error) { return slices.Clone(f), nil }

var (
	_ tool.Tool    = fixedTool{}
	_ tool.Toolset = fixedToolset{}
)
