package echo_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/echo"
)

func user(s string) []model.Message { return []model.Message{{Role: model.RoleUser, Content: s}} }

var tools = []model.ToolDef{{Name: "calculator"}, {Name: "everything_echo"}}

func TestEchoAnswers(t *testing.T) {
	t.Parallel()
	var deltas []string
	resp, err := echo.Provider{}.Generate(t.Context(), &model.Request{System: "be nice", Messages: user("hello  big world")}, func(d model.Delta) { deltas = append(deltas, d.Content) })
	require.NoError(t, err)
	require.Equal(t, "Echo: hello  big world", resp.Content)
	require.Equal(t, "Echo: hello  big world", strings.Join(deltas, ""), "deltas concatenate to the answer")
	require.Greater(t, len(deltas), 1, "answers stream word by word")
	require.Equal(t, model.Usage{InputTokens: 5, OutputTokens: 4}, resp.Usage)
	require.Equal(t, "echo", resp.Model)
}

func TestEchoCallDirectives(t *testing.T) {
	t.Parallel()
	msg := "please\n/call calculator {\"expression\":\"1+1\"}\n/call echo {\"message\":\"hi\"}\n/call calculator"
	resp, err := echo.Provider{}.Generate(t.Context(), &model.Request{Messages: user(msg), Tools: tools}, nil)
	require.NoError(t, err)
	require.Equal(t, model.StopToolCalls, resp.StopReason)
	require.Equal(t, []model.ToolCall{
		{ID: "echo_call_1", Name: "calculator", Arguments: `{"expression":"1+1"}`},
		{ID: "echo_call_2", Name: "everything_echo", Arguments: `{"message":"hi"}`},
		{ID: "echo_call_3", Name: "calculator", Arguments: "{}"},
	}, resp.ToolCalls)

	resp, err = echo.Provider{}.Generate(t.Context(), &model.Request{Messages: user("/call shell {}"), Tools: tools}, nil)
	require.NoError(t, err)
	require.Equal(t, `Echo: no tool named "shell" is available (tools: calculator, everything_echo)`, resp.Content)

	resp, err = echo.Provider{}.Generate(t.Context(), &model.Request{Messages: user("/call calculator [1]"), Tools: tools}, nil)
	require.NoError(t, err)
	require.Contains(t, resp.Content, "not a JSON object")
}

func TestEchoAnswersWithToolResults(t *testing.T) {
	t.Parallel()
	msgs := append(user("/call calculator {}"),
		model.Message{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{{ID: "1", Name: "calculator"}}},
		model.Message{Role: model.RoleTool, ToolCallID: "1", Name: "calculator", Content: "2"},
		model.Message{Role: model.RoleTool, ToolCallID: "2", Name: "everything_echo", Content: "Echo: hi"})
	resp, err := echo.Provider{}.Generate(t.Context(), &model.Request{Messages: msgs, Tools: tools}, nil)
	require.NoError(t, err)
	require.Equal(t, "calculator: 2\neverything_echo: Echo: hi", resp.Content)
}

func TestEchoLeadsTeamsAndSearches(t *testing.T) {
	t.Parallel()
	members := map[string]any{"type": "object", "properties": map[string]any{"member": map[string]any{"enum": []any{"a", "b"}}}}
	resp, err := echo.Provider{}.Generate(t.Context(), &model.Request{Messages: user("do it"), Tools: []model.ToolDef{{Name: "delegate_task_to_member", Parameters: members}}}, nil)
	require.NoError(t, err)
	require.Len(t, resp.ToolCalls, 2)
	require.JSONEq(t, `{"member":"b","task":"do it"}`, resp.ToolCalls[1].Arguments)

	resp, err = echo.Provider{}.Generate(t.Context(), &model.Request{Messages: user("do it"), Tools: []model.ToolDef{{Name: "route_to_member", Parameters: members}}}, nil)
	require.NoError(t, err)
	require.Len(t, resp.ToolCalls, 1)
	require.JSONEq(t, `{"member":"a","task":"do it"}`, resp.ToolCalls[0].Arguments)

	resp, err = echo.Provider{}.Generate(t.Context(), &model.Request{Messages: user("vacation policy"), Tools: []model.ToolDef{{Name: "knowledge_search"}}}, nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"query":"vacation policy"}`, resp.ToolCalls[0].Arguments)
}

func TestEchoOutputSchema(t *testing.T) {
	t.Parallel()
	schema := map[string]any{"type": "object", "required": []any{"answer", "score", "ok", "tags", "level"}, "properties": map[string]any{
		"answer": map[string]any{"type": "string"}, "score": map[string]any{"type": "number"}, "ok": map[string]any{"type": "boolean"},
		"tags": map[string]any{"type": "array"}, "level": map[string]any{"enum": []any{"low", "high"}},
	}}
	resp, err := echo.Provider{}.Generate(t.Context(), &model.Request{Messages: user("hi"), OutputSchema: schema}, nil)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(resp.Content), &got))
	require.Equal(t, map[string]any{"answer": "Echo: hi", "score": 0.0, "ok": false, "tags": []any{}, "level": "low"}, got)
}

func TestEchoCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := contextCancelled(t)
	defer cancel()
	_, err := echo.Provider{}.Generate(ctx, &model.Request{Messages: user("x")}, nil)
	require.Error(t, err)
}
