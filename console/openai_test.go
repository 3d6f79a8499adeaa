package console_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"
)

// TestOpenAIClient drives /v1 with the official OpenAI Go SDK.
func TestOpenAIClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	client := openai.NewClient(option.WithBaseURL(ts.url+"/v1"), option.WithAPIKey(aliceKey), option.WithMaxRetries(0))

	models, err := client.Models.List(t.Context())
	require.NoError(t, err)
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	require.Equal(t, []string{"calc", "helpdesk", "writer", "crew"}, ids)

	params := openai.ChatCompletionNewParams{
		Model: "writer",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("ignored: the agent's own instructions apply"),
			openai.UserMessage("first"),
			openai.AssistantMessage("reply"),
			openai.UserMessage("hello"),
		},
	}
	resp, err := client.Chat.Completions.New(t.Context(), params)
	require.NoError(t, err)
	require.Equal(t, "system=Write.|user=hello|history=2", resp.Choices[0].Message.Content)
	require.Equal(t, "stop", string(resp.Choices[0].FinishReason))
	require.EqualValues(t, 15, resp.Usage.TotalTokens)

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(t.Context(), params)
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	require.NoError(t, stream.Err())
	require.Greater(t, chunks, 3, "the answer streams in pieces")
	require.Equal(t, "system=Write.|user=hello|history=2", acc.Choices[0].Message.Content)
	require.EqualValues(t, 15, acc.Usage.TotalTokens)

	// A tool-using agent through the SDK: tools run inside Troupe.
	resp, err = client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "calc", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("calc: 2+3")}})
	require.NoError(t, err)
	require.Equal(t, "The answer is 5.", resp.Choices[0].Message.Content)

	_, err = client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "nobody", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	require.Equal(t, "model_not_found", apiErr.Code)
}

func TestChatCompletionsSessionHeader(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	status, body, hdr := ts.do(http.MethodPost, "/v1/chat/completions", "", "application/json", `{"model":"writer","messages":[{"role":"user","content":[{"type":"text","text":"part one"}]}]}`)
	require.Equal(t, http.StatusOK, status, body)
	sid := hdr.Get("X-Session-Id")
	require.NotEmpty(t, sid)
	// The header binds later requests to the same session.
	req, err := http.NewRequest(http.MethodPost, ts.url+"/v1/chat/completions", strings.NewReader(`{"model":"writer","messages":[{"role":"user","content":"part two"}]}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Session-Id", sid)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, sid, resp.Header.Get("X-Session-Id"))
	var runs []runJSON
	ts.json(http.MethodGet, "/sessions/"+sid+"/runs", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 2)
	require.Equal(t, "part one", runs[0].RunInput)
	require.Equal(t, "part two", runs[1].RunInput)
	status, body, _ = ts.do(http.MethodPost, "/v1/chat/completions", "", "application/json", `{"model":"writer","messages":[{"role":"system","content":"x"}]}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, `"type":"invalid_request_error"`)
}
