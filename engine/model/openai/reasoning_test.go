package openai

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

func TestReasoningContentNonStreaming(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"reasoning_content (DeepSeek, vLLM)", `{"model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"42","reasoning_content":"6 times 7 is 42."},"finish_reason":"stop"}]}`, "6 times 7 is 42."},
		{"reasoning (OpenRouter, Ollama)", `{"model":"r1","choices":[{"index":0,"message":{"role":"assistant","content":"42","reasoning":"6 times 7 is 42."},"finish_reason":"stop"}]}`, "6 times 7 is 42."},
		{"none", `{"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"42"},"finish_reason":"stop"}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, jsonHandler(200, tt.body))
			resp, err := New(Options{BaseURL: srv.URL, APIKey: "sk-test"}).Generate(t.Context(), userRequest("6*7?"), nil)
			require.NoError(t, err)
			require.Equal(t, "42", resp.Content)
			require.Equal(t, tt.want, resp.Reasoning)
		})
	}
}

const reasoningStream = `data: {"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Six "},"finish_reason":null}]}

data: {"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"sevens."},"finish_reason":null}]}

data: {"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"content":"42","reasoning_content":null},"finish_reason":null}]}

data: {"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":9}}

data: [DONE]

`

func TestReasoningContentStream(t *testing.T) {
	for _, n := range []int{1, 13, len(reasoningStream)} {
		srv, reqs := newServer(t, sseHandler(chop(reasoningStream, n)...))
		var got []model.Delta
		req := userRequest("6*7?")
		req.Messages = append([]model.Message{{Role: model.RoleUser, Content: "hi"}, {Role: model.RoleAssistant, Content: "hello", Reasoning: "earlier-thought"}}, req.Messages...)
		resp, err := New(Options{BaseURL: srv.URL, APIKey: "sk-test"}).Generate(t.Context(), req, func(d model.Delta) { got = append(got, d) })
		require.NoError(t, err)
		require.Equal(t, []model.Delta{{Reasoning: "Six "}, {Reasoning: "sevens."}, {Content: "42"}}, got)
		require.Equal(t, "42", resp.Content)
		require.Equal(t, "Six sevens.", resp.Reasoning)
		// Reasoning is never sent back: DeepSeek refuses reasoning_content in input messages.
		raw := string(next(t, reqs).raw)
		require.Contains(t, raw, `"hello"`)
		require.NotContains(t, raw, "earlier-thought")
	}
}
