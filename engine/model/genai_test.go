package model_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

// TestExchange: a request and its answer render as GenAI message JSON that
// stays valid however they are cut: texts to maxPart bytes (on a rune
// boundary), the input to its newest maxMessages messages, every text
// scrubbed.
func TestExchange(t *testing.T) {
	t.Parallel()
	scrub := strings.NewReplacer("sk-secret", "[redacted]").Replace
	req := &model.Request{System: "Use sk-secret.", Messages: []model.Message{
		{Role: model.RoleUser, Content: "first"},
		{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{{ID: "c1", Name: "lookup", Arguments: `{"q":"héllo wörld"}`}}},
		{Role: model.RoleTool, ToolCallID: "c1", Name: "lookup", Content: "token sk-secret found"},
	}}
	for _, tc := range []struct {
		name                string
		resp                *model.Response
		maxPart, maxMsgs    int
		system, input, want string
	}{
		{"whole", &model.Response{Content: "done", StopReason: "end_turn"}, 0, 0,
			`[{"type":"text","content":"Use [redacted]."}]`,
			`[{"role":"user","parts":[{"type":"text","content":"first"}]},` +
				`{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"lookup","arguments":{"q":"héllo wörld"}}]},` +
				`{"role":"tool","parts":[{"type":"tool_call_response","id":"c1","response":"token [redacted] found"}]}]`,
			`[{"role":"assistant","parts":[{"type":"text","content":"done"}],"finish_reason":"stop"}]`},
		{"cut", &model.Response{ToolCalls: []model.ToolCall{{ID: "c2", Name: "lookup", Arguments: `{"q":"x"}`}}}, 9, 2,
			`[{"type":"text","content":"Use [reda…"}]`,
			`[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"lookup","arguments":"{\"q\":\"hé…"}]},` +
				`{"role":"tool","parts":[{"type":"tool_call_response","id":"c1","response":"token [re…"}]}]`,
			`[{"role":"assistant","parts":[{"type":"tool_call","id":"c2","name":"lookup","arguments":{"q":"x"}}],"finish_reason":"tool_call"}]`},
		{"failed request", nil, 0, 1, `[{"type":"text","content":"Use [redacted]."}]`,
			`[{"role":"tool","parts":[{"type":"tool_call_response","id":"c1","response":"token [redacted] found"}]}]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			system, input, output := model.Exchange(req, tc.resp, scrub, tc.maxPart, tc.maxMsgs)
			require.JSONEq(t, tc.system, system)
			require.JSONEq(t, tc.input, input)
			require.True(t, json.Valid([]byte(input)))
			if tc.want == "" {
				require.Empty(t, output)
				return
			}
			require.JSONEq(t, tc.want, output)
		})
	}
}
