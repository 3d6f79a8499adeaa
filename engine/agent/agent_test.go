package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// funcTool is a tool defined by a function.
type funcTool struct {
	name string
	fn   func(ctx context.Context, args json.RawMessage) (string, error)
}

func (f funcTool) Def() model.ToolDef {
	return model.ToolDef{Name: f.name, Description: "test tool " + f.name, Parameters: map[string]any{"type": "object"}}
}

func (f funcTool) Call(ctx context.Context, args json.RawMessage) (string, error) {
	return f.fn(ctx, args)
}

func newAgent(t testing.TB, p model.Provider, tools []tool.Tool, mutate ...func(*spec.Agent)) *agent.Agent {
	t.Helper()
	s := &spec.Agent{Meta: spec.Meta{Kind: spec.KindAgent, Name: "tester"}, Model: "fake/model", Instructions: "Be brief."}
	s.Limits = spec.Limits{MaxToolCalls: 10, Timeout: spec.Duration(10 * time.Second), ToolTimeout: spec.Duration(2 * time.Second), MaxToolResult: 1000, MaxModelTurns: 10}
	for _, m := range mutate {
		m(s)
	}
	a, err := agent.New(agent.Config{Spec: s, Provider: p, Model: "model", Vendor: "fake", Tools: tools,
		Now: func() time.Time { return time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC) }})
	require.NoError(t, err)
	return a
}

// collect runs a turn and returns its events, checking that exactly one
// terminal event ends the stream.
func collect(t testing.TB, ctx context.Context, a agent.Runner, in agent.Input) ([]event.Event, *agent.Result) {
	t.Helper()
	var mu sync.Mutex
	var events []event.Event
	res := a.Execute(ctx, in, func(e event.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	})
	terminals := 0
	for _, e := range events {
		if e.Type.Terminal() {
			terminals++
		}
	}
	require.Equal(t, 1, terminals, "exactly one terminal event")
	require.True(t, events[len(events)-1].Type.Terminal(), "the terminal event is last")
	require.Equal(t, event.RunStarted, events[0].Type)
	return events, res
}

func types(events []event.Event) []event.Type {
	out := make([]event.Type, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func calls(names ...string) []model.ToolCall {
	out := make([]model.ToolCall, len(names))
	for i, n := range names {
		out[i] = model.ToolCall{ID: "call_" + n + "_" + string(rune('a'+i)), Name: n, Arguments: `{"n":1}`}
	}
	return out
}

func TestAnswerWithoutTools(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Deltas: []string{"Hel", "lo", "!"}, Usage: model.Usage{InputTokens: 12, OutputTokens: 3}})
	a := newAgent(t, p, nil, func(s *spec.Agent) { s.AddDate = true })
	history := []model.Message{{Role: model.RoleUser, Content: "earlier"}, {Role: model.RoleAssistant, Content: "answer"}}
	events, res := collect(t, t.Context(), a, agent.Input{Message: "hi", RunID: "r1", SessionID: "s1", History: history, Stream: true})
	require.Equal(t, []event.Type{event.RunStarted, event.RunContent, event.RunContent, event.RunContent, event.ModelRequestCompleted, event.RunCompleted}, types(events))
	require.Equal(t, event.StatusCompleted, res.Status)
	require.Equal(t, "Hello!", res.Content)
	require.Equal(t, "Hello!", events[len(events)-1].Content)
	require.Equal(t, 15, res.Metrics.TotalTokens)
	require.Equal(t, "r1", events[1].RunID)
	require.Equal(t, "tester", events[1].AgentID)

	req := p.Requests()[0]
	require.Equal(t, "Be brief.\n\nThe current date and time is Saturday, 21 November 2026 09:30 UTC.", req.System)
	require.Equal(t, append(history, model.Message{Role: model.RoleUser, Content: "hi"}), req.Messages)
	require.Len(t, res.Messages, 2, "the turn's own messages: user and assistant")
}

// barrier is a tool whose calls each wait until n calls have started: it can
// only succeed if the calls run concurrently.
func barrier(n int) tool.Tool {
	var started atomic.Int32
	all := make(chan struct{})
	return funcTool{name: "barrier", fn: func(ctx context.Context, _ json.RawMessage) (string, error) {
		if started.Add(1) == int32(n) {
			close(all)
		}
		select {
		case <-all:
			return "passed", nil
		case <-ctx.Done():
			return "", errors.New("the other call never started")
		}
	}}
}

func TestToolCallsRunConcurrently(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{ToolCalls: calls("barrier", "barrier")}, fake.Step{Content: "both done"})
	a := newAgent(t, p, []tool.Tool{barrier(2)})
	events, res := collect(t, t.Context(), a, agent.Input{Message: "go"})
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	require.Len(t, res.Tools, 2)
	for _, tc := range res.Tools {
		require.False(t, tc.Error, tc.Result)
		require.Equal(t, "passed", tc.Result)
	}
	// Both ToolCallStarted events precede either completion.
	require.Equal(t, []event.Type{event.RunStarted, event.ModelRequestCompleted, event.ToolCallStarted, event.ToolCallStarted,
		event.ToolCallCompleted, event.ToolCallCompleted, event.RunContent, event.ModelRequestCompleted, event.RunCompleted}, types(events))
	second := p.Requests()[1].Messages
	require.Equal(t, model.RoleTool, second[2].Role)
	require.Equal(t, "call_barrier_a", second[2].ToolCallID, "results follow the order of the calls")
	require.Equal(t, "call_barrier_b", second[3].ToolCallID)
}

func TestToolTimeoutAndPanicBecomeToolErrors(t *testing.T) {
	t.Parallel()
	slow := funcTool{name: "slow", fn: func(ctx context.Context, _ json.RawMessage) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}}
	boom := funcTool{name: "boom", fn: func(context.Context, json.RawMessage) (string, error) { panic("kaboom") }}
	p := fake.New(fake.Step{ToolCalls: calls("slow", "boom", "missing")}, fake.Step{Content: "recovered"})
	a := newAgent(t, p, []tool.Tool{slow, boom}, func(s *spec.Agent) { s.Limits.ToolTimeout = spec.Duration(50 * time.Millisecond) })
	_, res := collect(t, t.Context(), a, agent.Input{Message: "go"})
	require.Equal(t, event.StatusCompleted, res.Status)
	require.Equal(t, "recovered", res.Content)
	require.True(t, res.Tools[0].Error)
	require.Contains(t, res.Tools[0].Result, "timed out after 50ms")
	require.True(t, res.Tools[1].Error)
	require.Contains(t, res.Tools[1].Result, "panic: kaboom")
	require.Contains(t, res.Tools[2].Result, `no tool named "missing"; available tools: boom, slow`)
	msgs := p.Requests()[1].Messages
	for _, m := range msgs[2:] {
		require.True(t, m.IsError)
		require.True(t, strings.HasPrefix(m.Content, "Error: "))
	}
}

func TestToolCallLimitEndsRun(t *testing.T) {
	t.Parallel()
	echo := funcTool{name: "echo", fn: func(_ context.Context, args json.RawMessage) (string, error) { return string(args), nil }}
	p := &fake.Provider{Repeat: &fake.Step{ToolCalls: calls("echo")}}
	a := newAgent(t, p, []tool.Tool{echo}, func(s *spec.Agent) { s.Limits.MaxToolCalls = 3 })
	events, res := collect(t, t.Context(), a, agent.Input{Message: "loop forever"})
	require.Equal(t, event.StatusError, res.Status)
	require.Equal(t, "limit", res.ErrorKind)
	require.ErrorIs(t, res.Err, agent.ErrToolLimit)
	require.Contains(t, events[len(events)-1].Content, "more than 3 tool calls")
	require.Len(t, res.Tools, 3)
}

func TestToolResultTruncated(t *testing.T) {
	t.Parallel()
	big := funcTool{name: "big", fn: func(context.Context, json.RawMessage) (string, error) { return strings.Repeat("x", 5000), nil }}
	p := fake.New(fake.Step{ToolCalls: calls("big")}, fake.Step{Content: "ok"})
	a := newAgent(t, p, []tool.Tool{big})
	collect(t, t.Context(), a, agent.Input{Message: "go"})
	got := p.Requests()[1].Messages[2].Content
	require.Less(t, len(got), 1100)
	require.Contains(t, got, "[truncated: 1000 of 5000 bytes shown]")
}

// secretTool sends a credential and echoes it back, as an MCP server or an
// upstream quoting the header it rejected would; it does not redact itself.
type secretTool struct {
	funcTool
	secret string
}

func (s secretTool) Secrets() []string { return []string{"Bearer " + s.secret} }

// TestToolSecretsRedacted: whatever a tool returns, its configured secrets
// never reach the model, the events or the result, in results and in errors.
func TestToolSecretsRedacted(t *testing.T) {
	t.Parallel()
	const secret = "tok-5ecret-value"
	tests := []struct {
		name string
		fn   func(context.Context, json.RawMessage) (string, error)
	}{
		{"result", func(context.Context, json.RawMessage) (string, error) { return "header was Bearer " + secret, nil }},
		{"bare credential", func(context.Context, json.RawMessage) (string, error) { return "token=" + secret, nil }},
		{"error", func(context.Context, json.RawMessage) (string, error) {
			return "", fmt.Errorf("HTTP 401: invalid token %s", secret)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			echo := secretTool{funcTool: funcTool{name: "echo", fn: tt.fn}, secret: secret}
			p := fake.New(fake.Step{ToolCalls: calls("echo")}, fake.Step{Content: "ok"})
			a := newAgent(t, p, []tool.Tool{echo})
			events, res := collect(t, t.Context(), a, agent.Input{Message: "go"})
			all := fmt.Sprintf("%+v %+v %+v", events, res, p.Requests())
			require.NotContains(t, all, secret)
			require.Contains(t, p.Requests()[1].Messages[2].Content, "[redacted]")
			require.Contains(t, res.Tools[0].Result, "[redacted]")
		})
	}
}

func TestCancelMidStream(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Deltas: []string{"partial "}, Block: true})
	a := newAgent(t, p, nil)
	ctx, cancel := context.WithCancel(t.Context())
	var cancelledAt time.Time
	var terminalAt time.Time
	var events []event.Event
	res := a.Execute(ctx, agent.Input{Message: "go", Stream: true}, func(e event.Event) {
		events = append(events, e)
		if e.Type == event.RunContent {
			cancelledAt = time.Now()
			go cancel()
		}
		if e.Type.Terminal() {
			terminalAt = time.Now()
		}
	})
	require.Equal(t, event.StatusCancelled, res.Status)
	require.Equal(t, event.RunCancelled, events[len(events)-1].Type)
	require.Less(t, terminalAt.Sub(cancelledAt), 100*time.Millisecond)
}

func TestCancelDuringToolCall(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	stuck := funcTool{name: "stuck", fn: func(ctx context.Context, _ json.RawMessage) (string, error) {
		close(started)
		<-ctx.Done()
		return "", ctx.Err()
	}}
	p := fake.New(fake.Step{ToolCalls: calls("stuck")})
	a := newAgent(t, p, []tool.Tool{stuck})
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-started; cancel() }()
	_, res := collect(t, ctx, a, agent.Input{Message: "go"})
	require.Equal(t, event.StatusCancelled, res.Status)
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Block: true})
	a := newAgent(t, p, nil, func(s *spec.Agent) { s.Limits.Timeout = spec.Duration(30 * time.Millisecond) })
	events, res := collect(t, t.Context(), a, agent.Input{Message: "go"})
	require.Equal(t, event.StatusError, res.Status)
	require.Equal(t, "timeout", res.ErrorKind)
	require.Equal(t, "the run exceeded its 30ms limit (limits.timeout)", events[len(events)-1].Content)
}

func TestModelErrorEndsRun(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Err: &model.Error{Kind: model.ErrAuth, Provider: "openai", StatusCode: 401, Message: "invalid api key"}})
	a := newAgent(t, p, nil)
	events, res := collect(t, t.Context(), a, agent.Input{Message: "go"})
	require.Equal(t, event.StatusError, res.Status)
	require.Equal(t, "auth", res.ErrorKind)
	require.Equal(t, "openai: HTTP 401: auth: invalid api key", events[len(events)-1].Content)
}

func outputSchema(s *spec.Agent) {
	s.OutputSchema = spec.JSONSchema{"type": "object", "properties": map[string]any{"answer": map[string]any{"type": "string"}}, "required": []any{"answer"}}
}

func TestOutputSchemaRetriedOnceThenFails(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Content: "not json"}, fake.Step{Content: `{"answer": 5}`})
	a := newAgent(t, p, nil, outputSchema)
	events, res := collect(t, t.Context(), a, agent.Input{Message: "go"})
	require.Equal(t, event.StatusError, res.Status)
	require.Equal(t, "output_schema", res.ErrorKind)
	require.Contains(t, events[len(events)-1].Content, "does not match output_schema after a retry")
	reqs := p.Requests()
	require.Len(t, reqs, 2)
	require.NotNil(t, reqs[0].OutputSchema)
	retry := reqs[1].Messages[len(reqs[1].Messages)-1]
	require.Equal(t, model.RoleUser, retry.Role)
	require.Contains(t, retry.Content, "not valid JSON")
}

func TestOutputSchemaRetrySucceeds(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Step{Content: `{"answer": 5}`}, fake.Step{Content: "```json\n{\"answer\": \"five\"}\n```"})
	a := newAgent(t, p, nil, outputSchema)
	_, res := collect(t, t.Context(), a, agent.Input{Message: "go"})
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
}

func TestStreamChannel(t *testing.T) {
	t.Parallel()
	a := newAgent(t, fake.New(fake.Step{Content: "hi"}), nil)
	var got []event.Type
	for e := range a.Stream(t.Context(), agent.Input{Message: "x"}) {
		got = append(got, e.Type)
	}
	require.Equal(t, []event.Type{event.RunStarted, event.RunContent, event.ModelRequestCompleted, event.RunCompleted}, got)
}
