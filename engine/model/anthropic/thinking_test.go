package anthropic

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

func TestThinkingRequest(t *testing.T) {
	temp := 0.2
	tests := []struct {
		name         string
		budget, max  int
		wantThinking any
		wantMax      float64
	}{
		{"off", 0, 0, nil, DefaultMaxTokens},
		{"budget under max_tokens", 2000, 8000, map[string]any{"type": "enabled", "budget_tokens": 2000.0}, 8000},
		{"budget raised to the API minimum", 10, 8000, map[string]any{"type": "enabled", "budget_tokens": 1024.0}, 8000},
		{"max_tokens raised above the budget", 4000, 1000, map[string]any{"type": "enabled", "budget_tokens": 4000.0}, 4000 + DefaultMaxTokens},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newTestClient(t, jsonHandler(200, `{"type":"message","model":"m","content":[],"stop_reason":"end_turn","usage":{}}`, nil))
			req := simpleRequest()
			req.ReasoningBudget, req.MaxTokens, req.Temperature = tt.budget, tt.max, &temp
			_, err := c.Generate(t.Context(), req, nil)
			require.NoError(t, err)
			body := rec.last(t).bodyMap(t)
			require.Equal(t, tt.wantThinking, body["thinking"])
			require.Equal(t, tt.wantMax, body["max_tokens"])
			if tt.budget > 0 {
				require.NotContains(t, body, "temperature", "thinking refuses a temperature other than 1")
			} else {
				require.Equal(t, 0.2, body["temperature"])
			}
		})
	}
}

func TestThinkingBlocksNonStreaming(t *testing.T) {
	c, _ := newTestClient(t, jsonHandler(200, `{
		"type": "message", "role": "assistant", "model": "claude-test-1",
		"content": [
			{"type": "thinking", "thinking": "The user greets me.\nI should greet back.", "signature": "sig-123"},
			{"type": "redacted_thinking", "data": "opaque"},
			{"type": "text", "text": "Hello!"}
		],
		"stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 9}
	}`, nil))
	resp, err := c.Generate(t.Context(), simpleRequest(), nil)
	require.NoError(t, err)
	require.Equal(t, "Hello!", resp.Content)
	require.Equal(t, "The user greets me.\nI should greet back.", resp.Reasoning)
	require.Equal(t, "sig-123", resp.ReasoningSignature)
}

func thinkingStart(index int) string {
	return event("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"thinking","thinking":""}}`, index))
}

func thinkingDelta(index int, text string) string {
	return event("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"thinking_delta","thinking":%q}}`, index, text))
}

func signatureDelta(index int, sig string) string {
	return event("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"signature_delta","signature":%q}}`, index, sig))
}

func TestStreamThinkingDeltas(t *testing.T) {
	stream := messageStart(10) +
		thinkingStart(0) +
		thinkingDelta(0, "Step 1: read. ") +
		thinkingDelta(0, "Step 2: answer.") +
		signatureDelta(0, "EqQBCgIYAh") +
		blockStop(0) +
		textStart(1, "") +
		textDelta(1, "Done") +
		blockStop(1) +
		messageDelta("end_turn", 20) +
		messageStop
	c, _ := newTestClient(t, sseHandler(t, []string{stream}))
	var got []model.Delta
	resp, err := c.Generate(t.Context(), simpleRequest(), func(d model.Delta) { got = append(got, d) })
	require.NoError(t, err)
	require.Equal(t, []model.Delta{{Reasoning: "Step 1: read. "}, {Reasoning: "Step 2: answer."}, {Content: "Done"}}, got)
	require.Equal(t, "Done", resp.Content)
	require.Equal(t, "Step 1: read. Step 2: answer.", resp.Reasoning)
	require.Equal(t, "EqQBCgIYAh", resp.ReasoningSignature)
}

func TestSignedThinkingGoesBackWithToolUse(t *testing.T) {
	c, rec := newTestClient(t, jsonHandler(200, `{"type":"message","model":"m","content":[],"stop_reason":"end_turn","usage":{}}`, nil))
	req := simpleRequest()
	req.ReasoningBudget = 2048
	req.Messages = append(req.Messages,
		model.Message{Role: model.RoleAssistant, Reasoning: "need the weather", ReasoningSignature: "sig-9",
			ToolCalls: []model.ToolCall{{ID: "toolu_1", Name: "weather", Arguments: `{}`}}},
		model.Message{Role: model.RoleTool, ToolCallID: "toolu_1", Content: "sunny"},
		// Unsigned reasoning (another vendor's) is not sent: the API would refuse it.
		model.Message{Role: model.RoleAssistant, Reasoning: "from elsewhere", Content: "ok"},
	)
	_, err := c.Generate(t.Context(), req, nil)
	require.NoError(t, err)
	msgs := rec.last(t).bodyMap(t)["messages"].([]any)
	require.Len(t, msgs, 4)
	require.Equal(t, []any{
		map[string]any{"type": "thinking", "thinking": "need the weather", "signature": "sig-9"},
		map[string]any{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": map[string]any{}},
	}, msgs[1].(map[string]any)["content"])
	require.Equal(t, []any{map[string]any{"type": "text", "text": "ok"}}, msgs[3].(map[string]any)["content"])
}
