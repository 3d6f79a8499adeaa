package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/echo"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/spec"
)

// fakeRuntime routes provider "openai" to p and "echo" to the echo model.
func fakeRuntime(p model.Provider) *engine.Runtime {
	reg := model.NewRegistry()
	reg.Register("openai", func(model.Config) (model.Provider, error) { return p, nil })
	reg.Register("echo", echo.New)
	return &engine.Runtime{Models: reg, Env: func(k string) (string, bool) {
		if k == "OPENAI_API_KEY" {
			return "sk-test", true
		}
		return "", false
	}}
}

func (f *folder) runtimeEngine(rt *engine.Runtime) *engine.Engine {
	f.t.Helper()
	e, err := engine.New(engine.Options{Dirs: []string{f.dir}, Env: noEnv, Runtime: rt})
	require.NoError(f.t, err)
	return e
}

const openaiAgent = "kind: Agent\nname: a\nmodel: openai/gpt-test\ninstructions: %s\n"

func TestInFlightRunKeepsItsSnapshot(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: openai/gpt-test\ninstructions: old\n")
	release := make(chan struct{})
	p := fake.New(
		fake.Step{Content: "old answer", Match: func(r *model.Request) bool { return r.System == "old" }, Delay: 0},
		fake.Step{Content: "new answer", Match: func(r *model.Request) bool { return r.System == "new" }},
	)
	gate := &gatedProvider{p: p, gate: release}
	e := f.runtimeEngine(fakeRuntime(gate))
	defer e.Close()

	done := make(chan *agent.Result)
	go func() {
		res, _, err := e.Execute(t.Context(), spec.KindAgent, "a", agent.Input{Message: "hi", RunID: "r1"}, func(event.Event) {})
		require.NoError(t, err)
		done <- res
	}()
	gate.waitStarted(t)
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: openai/gpt-test\ninstructions: new\n")
	require.True(t, e.Load().Changed)
	close(release)
	require.Equal(t, "old answer", (<-done).Content, "the run keeps the snapshot it started with")

	res, snap, err := e.Execute(t.Context(), spec.KindAgent, "a", agent.Input{Message: "hi", RunID: "r2"}, func(event.Event) {})
	require.NoError(t, err)
	require.Equal(t, "new answer", res.Content, "a run started after the reload uses the new definition")
	require.EqualValues(t, 2, snap.Generation())
}

// gatedProvider holds every call until gate closes.
type gatedProvider struct {
	p       model.Provider
	gate    chan struct{}
	once    sync.Once
	started chan struct{}
	mu      sync.Mutex
}

func (g *gatedProvider) waitStarted(t *testing.T) {
	g.init()
	select {
	case <-g.started:
	case <-time.After(5 * time.Second):
		t.Fatal("run never reached the model")
	}
}

func (g *gatedProvider) init() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started == nil {
		g.started = make(chan struct{})
	}
}

func (g *gatedProvider) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	g.init()
	g.once.Do(func() { close(g.started) })
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.p.Generate(ctx, req, onDelta)
}

func TestExecuteErrors(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", "kind: Agent\nname: broken\nmodel: nope\n---\nkind: Agent\nname: keyless\nmodel: anthropic/claude-test\n")
	e := f.runtimeEngine(fakeRuntime(fake.New()))
	defer e.Close()
	_, _, err := e.Execute(t.Context(), spec.KindAgent, "ghost", agent.Input{Message: "x"}, func(event.Event) {})
	require.ErrorIs(t, err, engine.ErrNotFound)
	_, _, err = e.Execute(t.Context(), spec.KindAgent, "broken", agent.Input{Message: "x"}, func(event.Event) {})
	var be *engine.BrokenError
	require.ErrorAs(t, err, &be)
	require.Contains(t, err.Error(), `unknown model "nope"`)
	// A provider without a key is reported on the agent, not discovered mid-run.
	o, _ := e.Current().Object(spec.Key{Kind: spec.KindAgent, Name: "keyless"})
	require.Equal(t, engine.StatusBroken, o.Status)
	require.Contains(t, o.Diagnostics.Error(), "needs an API key: set ANTHROPIC_API_KEY")
}

func TestModelFallbacksCompiled(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("m.yaml", `kind: Model
name: flaky
provider: openai
model: gpt-primary
retries: 0
fallbacks: [echo]
---
kind: Agent
name: a
model: flaky
`)
	p := fake.New(fake.Step{Err: &model.Error{Kind: model.ErrOverloaded, Provider: "openai", StatusCode: 503}})
	e := f.runtimeEngine(fakeRuntime(p))
	defer e.Close()
	res, _, err := e.Execute(t.Context(), spec.KindAgent, "a", agent.Input{Message: "hello"}, func(event.Event) {})
	require.NoError(t, err)
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	require.Equal(t, "Echo: hello", res.Content, "the fallback answered")
	require.Equal(t, "gpt-primary", p.Requests()[0].Model)
}

// BenchmarkInstantiateAgent measures what a request pays to get a run-ready
// agent from the current compiled snapshot: pin the snapshot, look the agent
// up, unpin.
func BenchmarkInstantiateAgent(b *testing.B) {
	f := newFolder(b)
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: echo\ntools: [calculator, current_time]\n")
	e := f.runtimeEngine(fakeRuntime(fake.New()))
	defer e.Close()
	b.ReportAllocs()
	for b.Loop() {
		snap, release := e.Acquire()
		r, err := snap.Runner(spec.KindAgent, "a")
		if err != nil || r == nil {
			b.Fatal(err)
		}
		release()
	}
}

// instantProvider alternates a calculator call and an answer, without the
// bookkeeping of the scripted fake, so the benchmark measures the loop.
type instantProvider struct{}

func (instantProvider) Generate(_ context.Context, req *model.Request, _ func(model.Delta)) (*model.Response, error) {
	if req.Messages[len(req.Messages)-1].Role == model.RoleTool {
		return &model.Response{Content: "4", Usage: model.Usage{InputTokens: 20, OutputTokens: 1}}, nil
	}
	return &model.Response{ToolCalls: []model.ToolCall{{ID: "c1", Name: "calculator", Arguments: `{"expression":"2+2"}`}}, Usage: model.Usage{InputTokens: 10, OutputTokens: 5}}, nil
}

// BenchmarkTurnWithToolCall measures one full turn through the engine: two model
// requests and one tool call, with events delivered to a callback.
func BenchmarkTurnWithToolCall(b *testing.B) {
	f := newFolder(b)
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: openai/gpt-test\ninstructions: Add.\ntools: [calculator]\n")
	e := f.runtimeEngine(fakeRuntime(instantProvider{}))
	defer e.Close()
	ctx := context.Background()
	events := 0
	b.ReportAllocs()
	for b.Loop() {
		res, _, err := e.Execute(ctx, spec.KindAgent, "a", agent.Input{Message: "2+2?", RunID: "r"}, func(event.Event) { events++ })
		if err != nil || res.Status != event.StatusCompleted || res.Content != "4" {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkTurnWithGuardrails is BenchmarkTurnWithToolCall with PII and
// injection guardrails on the input and PII redaction on the output: what
// builtin guardrails add to a turn.
func BenchmarkTurnWithGuardrails(b *testing.B) {
	f := newFolder(b)
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: openai/gpt-test\ninstructions: Add.\ntools: [calculator]\n"+
		"guardrails:\n  input:\n    - pii: {action: redact}\n    - injection: {}\n  output:\n    - pii: {action: redact}\n")
	e := f.runtimeEngine(fakeRuntime(instantProvider{}))
	defer e.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, _, err := e.Execute(ctx, spec.KindAgent, "a", agent.Input{Message: "2+2?", RunID: "r"}, func(event.Event) {})
		if err != nil || res.Status != event.StatusCompleted || res.Content != "4" {
			b.Fatalf("%v %+v", err, res)
		}
	}
}
