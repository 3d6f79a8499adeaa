package spec_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

var update = flag.Bool("update", false, "rewrite spec/testdata/bad/*.golden")

// testEnv is the environment the corpus is loaded with: a fixed map, so results
// never depend on the machine.
func testEnv(name string) (string, bool) {
	v, ok := map[string]string{"TROUPE_TEST_SET": "set"}[name]
	return v, ok
}

// testBuiltins stand in for the engine's tool registry, which spec cannot
// import: in the product the loader gets the registry's list (engine's
// TestSpecBuiltinsFromRegistry).
var testBuiltins = []spec.BuiltinTool{
	{Name: "current_time"},
	{Name: "calculator"},
	{Name: "http_fetch", Options: []string{"timeout", "allowed_hosts", "max_response"}},
	{Name: "knowledge_search"},
}

func loadFile(t testing.TB, path string) *spec.Set {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return spec.NewSet([]*spec.File{spec.ParseFile(filepath.ToSlash(path), data, testEnv)}, testBuiltins...)
}

func TestBadSpecs(t *testing.T) {
	t.Parallel()
	cases, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cases), 25)
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := loadFile(t, path).Diagnostics().Error() + "\n"
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "missing golden file: run go test ./spec -update")
			require.Equal(t, string(want), got)
		})
	}
}

func TestGoodSpecs(t *testing.T) {
	t.Parallel()
	cases, err := filepath.Glob("testdata/good/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	for _, path := range cases {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			set := loadFile(t, path)
			require.Empty(t, set.Diagnostics())
			require.NotEmpty(t, set.Keys())
		})
	}
}

// TestExamples loads agents.d as troupe check does: every example must be clean.
func TestExamples(t *testing.T) {
	t.Parallel()
	set, err := spec.NewLoader(spec.LoaderOptions{Env: testEnv, BuiltinTools: testBuiltins}).Load("../agents.d")
	require.NoError(t, err)
	require.Empty(t, set.Diagnostics())
	var kinds []spec.Kind
	for _, k := range set.Keys() {
		kinds = append(kinds, k.Kind)
	}
	for _, k := range []spec.Kind{spec.KindAgent, spec.KindTeam, spec.KindTool, spec.KindKnowledge, spec.KindWorkflow, spec.KindTrigger, spec.KindBudget} {
		require.Contains(t, kinds, k)
	}
	// The example workflow shows a parallel fan-out and a condition.
	w, ok := set.Lookup(spec.Key{Kind: spec.KindWorkflow, Name: "briefing"}).(*spec.Workflow)
	require.True(t, ok, "agents.d has the briefing workflow")
	stepKinds := map[string]bool{}
	w.Walk(func(_ string, s *spec.Step) { stepKinds[s.Kind()] = true })
	for _, k := range []string{spec.StepAgent, spec.StepTeam, spec.StepParallel, spec.StepCondition} {
		require.True(t, stepKinds[k], "briefing has a %s step", k)
	}
	// Offline by default: every agent and team runs on echo unless TROUPE_MODEL says otherwise.
	for _, k := range set.Keys() {
		switch d := set.Lookup(k).(type) {
		case *spec.Agent:
			require.Equal(t, spec.EchoModel, d.Model, k.String())
		case *spec.Team:
			require.Equal(t, spec.EchoModel, d.Model, k.String())
		}
	}
}

func TestDecodedValues(t *testing.T) {
	t.Parallel()
	set := loadFile(t, "testdata/good/full_agent.yaml")
	a := set.Agent("everything")
	require.NotNil(t, a)
	require.Equal(t, "fast", a.Model)
	require.Equal(t, []string{"current_time", "calculator", "http_fetch", "knowledge_search", "lookup"}, a.Tools)
	require.Equal(t, 3, *a.History)
	require.Equal(t, spec.DefaultHistoryTokens, a.HistoryTokens)
	require.True(t, a.AddDate)
	require.InDelta(t, 0.2, *a.Temperature, 1e-9)
	require.Equal(t, spec.Limits{MaxToolCalls: 5, Timeout: spec.Duration(90e9), ToolTimeout: spec.Duration(10e9), MaxToolResult: 8192, MaxModelTurns: 8}, a.Limits)
	require.Equal(t, "object", a.OutputSchema["type"])

	m := set.Model("fast")
	require.Equal(t, "sk-test", m.APIKey)
	require.Equal(t, "${TEST_OPENAI_KEY:-sk-test}", m.Display("models.fast.api_key", m.APIKey), "values from interpolation are displayed as their source")
	require.Equal(t, 3, *m.Retries)
	require.Equal(t, []string{"careful", "ollama/llama3.2"}, m.Fallbacks)

	careful := set.Model("careful")
	require.Equal(t, spec.DefaultModelRetries, *careful.Retries, "defaults are applied in code")

	tool := set.Tool("lookup")
	require.Equal(t, []string{"id"}, tool.Placeholders())
	require.Equal(t, "Bearer token", tool.Headers["Authorization"])

	kb := set.Knowledge("handbook")
	require.Equal(t, spec.Store{Type: "milvus", Address: "localhost:19530", Collection: "handbook_v1"}, kb.Store)

	set = loadFile(t, "testdata/good/anchors_and_interpolation.yaml")
	base := set.Agent("base-agent")
	require.Equal(t, 7, base.Limits.MaxToolCalls)
	require.Equal(t, "45s", base.Limits.Timeout.String())
	require.Equal(t, "Prices are in ${CURRENCY} units.", base.Instructions)
	second := set.Agent("second")
	require.Equal(t, 2, second.Limits.MaxToolCalls, "merged from <<")
	require.Equal(t, "20s", second.Limits.Timeout.String(), "own keys override merged ones")

	set = loadFile(t, "testdata/good/shorthand.yaml")
	short := set.Knowledge("short")
	require.Equal(t, "fixed", short.Chunking.Strategy)
	require.Equal(t, "vector", short.Search.Mode)
	require.Equal(t, spec.DefaultTopK, short.Search.TopK)
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	env := func(name string) (string, bool) {
		return map[string]string{"SECRET_KEY": "sk-very-secret", "SECRET_URL": "not a url sk-very-secret"}[name], strings.HasPrefix(name, "SECRET_")
	}
	src := "kind: Model\nname: m\nprovider: openai\nmodel: gpt-4o\napi_key: ${SECRET_KEY}\nbase_url: ${SECRET_URL}\nmax_tokens: ${SECRET_KEY}\n"
	set := spec.NewSet([]*spec.File{spec.ParseFile("m.yaml", []byte(src), env)})
	out := set.Diagnostics().Error()
	require.Contains(t, out, "${SECRET_URL}")
	require.NotContains(t, out, "sk-very-secret")
	require.Equal(t, "sk-very-secret", set.Model("m").APIKey)
}

func TestDiagnosticsUnwrap(t *testing.T) {
	t.Parallel()
	set := loadFile(t, "testdata/bad/unknown_key.yaml")
	var err error = set.Diagnostics()
	var d spec.Diagnostic
	require.ErrorAs(t, err, &d)
	require.Equal(t, spec.Pos{File: "testdata/bad/unknown_key.yaml", Line: 4, Col: 1}, d.Pos)
	require.True(t, errors.As(err, &d))
}

func TestLoaderSkipsUnchangedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	write("a.yaml", "kind: Agent\nname: a\nmodel: echo\n")
	write("b.yaml", "kind: Agent\nname: b\nmodel: echo\n")
	write(".hidden.yaml", "kind: Agent\nname: hidden\nmodel: echo\n")
	write("notes.txt", "not a spec")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	write("sub/c.yml", "kind: Agent\nname: c\nmodel: echo\n")

	l := spec.NewLoader(spec.LoaderOptions{Env: testEnv})
	s1, err := l.Load(dir)
	require.NoError(t, err)
	require.Len(t, s1.Files(), 3)
	write("b.yaml", "kind: Agent\nname: b\nmodel: echo\ninstructions: changed\n")
	s2, err := l.Load(dir)
	require.NoError(t, err)
	require.Same(t, s1.Agent("a"), s2.Agent("a"), "unchanged file is not parsed again")
	require.NotSame(t, s1.Agent("b"), s2.Agent("b"))
	require.NotEqual(t, s1.Version(), s2.Version())

	_, err = l.Load(filepath.Join(dir, "missing"))
	require.Error(t, err)
}

func TestSchemaAcceptsGoodAndExamples(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	files, err := filepath.Glob("testdata/good/*.yaml")
	require.NoError(t, err)
	examples, err := spec.SpecFiles("../agents.d")
	require.NoError(t, err)
	for _, path := range append(files, examples...) {
		for i, doc := range yamlDocs(t, path) {
			require.NoError(t, sch.Validate(doc), "%s document %d", path, i)
		}
	}
}

func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	for _, src := range []string{
		"kind: Agent\nname: a\nmodel: echo\ninstructons: typo\n",
		"kind: Agent\nname: a\nmodel: echo\nlimits: {max_tool_call: 3}\n",
		"kind: Agent\nname: a\n",
		"kind: Team\nname: t\nmode: rout\nmodel: echo\nmembers: [a]\n",
		"kind: Widget\nname: w\n",
		"kind: Agent\nname: Bad Name\nmodel: echo\n",
		"kind: Agent\nname: a\nmodel: echo\nhistory: many\n",
		"kind: Tool\nname: t\ntype: http\nurl: https://x\nfoo: 1\n",
		"kind: Workflow\nname: w\nsteps: [{name: a, agent: x}]\noutput: {templte: x}\n",
		"kind: Workflow\nname: w\nsteps: [{name: a, agent: x}]\noutput: {schema: [x]}\n",
		"kind: Workflow\nname: w\nsteps: [{name: a, agent: x}]\noutput: 3\n",
	} {
		doc := yamlDoc(t, src)
		require.Error(t, sch.Validate(doc), src)
	}
}

// TestEnvValues: a document says which values the environment supplied where,
// so components can redact exactly those (an upstream echoing a header).
func TestEnvValues(t *testing.T) {
	t.Parallel()
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"TOKEN": "tok-1234", "HOOK": "h00k-5", "USER": "bob", "PASS": "pa55word", "EMPTY": ""}[k]
		return v, ok
	}
	src := `kind: Tool
name: api
type: http
url: https://x.example/hooks/${HOOK}/x
headers:
  Authorization: Bearer ${TOKEN}
  X-Basic: ${USER}:${PASS}
  X-Default: ${MISSING:-written-in-the-file}
  X-Empty: ${EMPTY:-fallback-value}
  X-Plain: plain-value
`
	set := spec.NewSet([]*spec.File{spec.ParseFile("t.yaml", []byte(src), env)})
	require.False(t, set.Diagnostics().HasErrors(), set.Diagnostics())
	tl := set.Tool("api")
	require.ElementsMatch(t, []string{"tok-1234", "bob", "pa55word"}, tl.EnvValues("tools.api.headers"))
	require.Equal(t, []string{"tok-1234"}, tl.EnvValues("tools.api.headers.Authorization"))
	require.Equal(t, []string{"h00k-5"}, tl.EnvValues("tools.api.url"))
	require.ElementsMatch(t, []string{"tok-1234", "bob", "pa55word", "h00k-5"}, tl.EnvValues("tools.api"))
	require.Empty(t, tl.EnvValues("tools.api.head"), "a prefix of a key is not the key")
}
