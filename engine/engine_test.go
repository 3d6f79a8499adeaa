package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func noEnv(string) (string, bool) { return "", false }

type folder struct {
	t   testing.TB
	dir string
}

func newFolder(t testing.TB) *folder { return &folder{t: t, dir: t.TempDir()} }

func (f *folder) write(name, content string) {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	require.NoError(f.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(f.t, os.WriteFile(p, []byte(content), 0o644))
}

// replace writes content atomically, the way editors save: temp file, rename.
func (f *folder) replace(name, content string) {
	f.t.Helper()
	tmp := filepath.Join(f.dir, "."+name+".tmp")
	require.NoError(f.t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(f.t, os.Rename(tmp, filepath.Join(f.dir, name)))
}

func (f *folder) remove(name string) {
	f.t.Helper()
	require.NoError(f.t, os.Remove(filepath.Join(f.dir, name)))
}

func (f *folder) engine() *engine.Engine {
	f.t.Helper()
	e, err := engine.New(engine.Options{Dirs: []string{f.dir}, Env: noEnv})
	require.NoError(f.t, err)
	return e
}

func agentYAML(name, instructions string, tools ...string) string {
	s := "kind: Agent\nname: " + name + "\nmodel: echo\ninstructions: " + instructions + "\n"
	if len(tools) > 0 {
		s += "tools: ["
		for i, t := range tools {
			if i > 0 {
				s += ", "
			}
			s += t
		}
		s += "]\n"
	}
	return s
}

const toolYAML = "kind: Tool\nname: lookup\ntype: http\nurl: https://example.com/{q}\nparameters: {type: object, properties: {q: {type: string}}}\n"

func TestBrokenEditKeepsLastGood(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", agentYAML("a", "v1"))
	f.write("b.yaml", agentYAML("b", "v1"))
	e := f.engine()
	s1 := e.Current()
	require.EqualValues(t, 1, s1.Generation())

	f.write("a.yaml", agentYAML("a", "v2")+"tools: [no_such_tool]\n")
	f.write("b.yaml", agentYAML("b", "v2"))
	res := e.Load()
	require.True(t, res.Changed)
	s2 := e.Current()
	require.EqualValues(t, 2, s2.Generation())

	a, ok := s2.Agent("a")
	require.True(t, ok, "a broken edit keeps the previous version serving")
	require.Equal(t, "v1", a.Spec.Instructions)
	obj, _ := s2.Object(spec.Key{Kind: spec.KindAgent, Name: "a"})
	require.Equal(t, engine.StatusStale, obj.Status)
	require.Contains(t, obj.Diagnostics.Error(), `unknown tool "no_such_tool"`)

	b, _ := s2.Agent("b")
	require.Equal(t, "v2", b.Spec.Instructions, "one broken document never blocks the others")
	require.Equal(t, map[engine.Status]int{engine.StatusOK: 1, engine.StatusStale: 1}, res.Counts)

	// A new agent that is broken from the start has nothing to serve.
	f.write("c.yaml", "kind: Agent\nname: c\n")
	e.Load()
	_, ok = e.Current().Agent("c")
	require.False(t, ok)
	obj, _ = e.Current().Object(spec.Key{Kind: spec.KindAgent, Name: "c"})
	require.Equal(t, engine.StatusBroken, obj.Status)

	// Fixing it serves the new version.
	f.write("a.yaml", agentYAML("a", "v3"))
	e.Load()
	a, _ = e.Current().Agent("a")
	require.Equal(t, "v3", a.Spec.Instructions)
}

func TestSyntaxErrorKeepsFileObjects(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("two.yaml", agentYAML("one", "x")+"---\n"+agentYAML("two", "x"))
	e := f.engine()
	f.write("two.yaml", "kind: Agent\nname: one\n  model: [\n")
	e.Load()
	s := e.Current()
	for _, name := range []string{"one", "two"} {
		_, ok := s.Agent(name)
		require.True(t, ok, name)
		o, _ := s.Object(spec.Key{Kind: spec.KindAgent, Name: name})
		require.Equal(t, engine.StatusStale, o.Status)
		require.Contains(t, o.Diagnostics.Error(), "invalid YAML")
	}
	// Deleting the file removes its objects.
	f.remove("two.yaml")
	e.Load()
	require.Empty(t, e.Current().Objects())
}

func TestBrokenDependency(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("tool.yaml", toolYAML)
	f.write("a.yaml", agentYAML("a", "v1", "lookup"))
	f.write("b.yaml", agentYAML("b", "v1", "calculator"))
	e := f.engine()
	a, ok := e.Current().Agent("a")
	require.True(t, ok)
	require.Equal(t, "lookup", a.Tools[0].Spec.Name)

	// The tool breaks: it keeps serving its old version, and so does a.
	f.write("tool.yaml", toolYAML+"timeout: soon\n")
	e.Load()
	a2, ok := e.Current().Agent("a")
	require.True(t, ok)
	require.Same(t, a.Tools[0].Spec, a2.Tools[0].Spec)

	// A new tool broken from the start breaks the new version of the agent that
	// uses it; the agent falls back to its previous version.
	f.write("new.yaml", "kind: Tool\nname: fresh\ntype: http\n")
	f.write("a.yaml", agentYAML("a", "v2", "fresh"))
	e.Load()
	s := e.Current()
	a3, ok := s.Agent("a")
	require.True(t, ok)
	require.Equal(t, "v1", a3.Spec.Instructions)
	o, _ := s.Object(spec.Key{Kind: spec.KindAgent, Name: "a"})
	require.Equal(t, engine.StatusStale, o.Status)
	require.Contains(t, o.Diagnostics.Error(), `depends on tool "fresh", which is not serving`)

	// A brand-new agent on a broken tool is broken; b is untouched.
	f.write("c.yaml", agentYAML("c", "v1", "fresh"))
	e.Load()
	_, ok = e.Current().Agent("c")
	require.False(t, ok)
	_, ok = e.Current().Agent("b")
	require.True(t, ok)
}

func TestTeamsAndModelsResolve(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("all.yaml", `kind: Model
name: smart
provider: openai
model: gpt-4o
fallbacks: [backup, ollama/llama3.2]
---
kind: Model
name: backup
provider: anthropic
model: claude-sonnet-4-5
---
kind: Agent
name: worker
model: smart
---
kind: Team
name: inner
mode: broadcast
model: echo
members: [worker]
---
kind: Team
name: outer
mode: route
model: backup
members: [inner, worker]
`)
	e := f.engine()
	s := e.Current()
	w, _ := s.Agent("worker")
	require.Equal(t, "openai", w.Model.Provider)
	require.Equal(t, "gpt-4o", w.Model.Model)
	require.Len(t, w.Model.Fallbacks, 2)
	require.Equal(t, "anthropic", w.Model.Fallbacks[0].Provider)
	require.Equal(t, "llama3.2", w.Model.Fallbacks[1].Model)
	outer, _ := s.Team("outer")
	inner, _ := s.Team("inner")
	require.Same(t, inner, outer.Members[0].Team)
	require.Same(t, w, outer.Members[1].Agent)
	require.Same(t, w, inner.Members[0].Agent)
}

func TestUnchangedFolderKeepsSnapshot(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", agentYAML("a", "v1"))
	e := f.engine()
	s := e.Current()
	res := e.Load()
	require.False(t, res.Changed)
	require.Same(t, s, e.Current())
}

func TestReloadRequestsCoalesce(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", agentYAML("a", "v1"))
	e := f.engine()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- e.Run(ctx, nil) }()

	updates, unsubscribe := e.Subscribe()
	defer unsubscribe()
	f.write("a.yaml", agentYAML("a", "v2"))
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			res, err := e.Reload(ctx)
			require.NoError(t, err)
			require.True(t, res.Success())
			a, _ := e.Current().Agent("a")
			require.Equal(t, "v2", a.Spec.Instructions, "a reload requested after a change sees it")
		})
	}
	wg.Wait()
	require.EqualValues(t, 2, e.Current().Generation(), "ten requests, one change, one new snapshot")
	select {
	case s := <-updates:
		require.EqualValues(t, 2, s.Generation())
	case <-time.After(time.Second):
		t.Fatal("no snapshot published")
	}
	cancel()
	require.NoError(t, <-done)
}

func TestUnreadableFolderKeepsServing(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("sub/a.yaml", agentYAML("a", "v1"))
	e, err := engine.New(engine.Options{Dirs: []string{filepath.Join(f.dir, "sub")}, Env: noEnv})
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(filepath.Join(f.dir, "sub")))
	res := e.Load()
	require.Error(t, res.Err)
	_, ok := e.Current().Agent("a")
	require.True(t, ok)
	_, err = engine.New(engine.Options{Dirs: []string{filepath.Join(f.dir, "missing")}})
	require.Error(t, err)
}
