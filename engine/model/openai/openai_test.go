package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

// received is one request as the test server saw it.
type received struct {
	path   string
	header http.Header
	raw    []byte         // the body as sent
	body   map[string]any // the body decoded
}

// newServer starts a server that records each request on the returned channel
// and then runs handle. Handlers run on server goroutines, so they must not
// call t.FailNow; the tests assert on what the channel delivers instead.
func newServer(t *testing.T, handle http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	reqs := make(chan received, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		rec := received{path: r.URL.Path, header: r.Header.Clone(), raw: raw}
		_ = json.Unmarshal(raw, &rec.body)
		select {
		case reqs <- rec:
		default:
		}
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

// next returns the request the server received.
func next(t *testing.T, reqs <-chan received) received {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	default:
		require.FailNow(t, "the server received no request")
		return received{}
	}
}

// writeSSE writes parts as a text/event-stream, flushing after each part so
// the client sees the boundaries the test chose.
func writeSSE(w http.ResponseWriter, parts ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	f := w.(http.Flusher)
	for _, p := range parts {
		_, _ = io.WriteString(w, p)
		f.Flush()
	}
}

// chop splits s every n bytes, cutting through "data:" prefixes, JSON
// strings, escapes and line endings alike.
func chop(s string, n int) []string {
	var parts []string
	for len(s) > n {
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return append(parts, s)
}

// jsonHandler answers every request with status and body as JSON.
func jsonHandler(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// sseHandler streams the given parts.
func sseHandler(parts ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeSSE(w, parts...) }
}

// collect returns an onDelta that records deltas, and a func returning them.
func collect() (func(model.Delta), func() []string) {
	var got []string
	return func(d model.Delta) { got = append(got, d.Content) }, func() []string { return got }
}

func userRequest(text string) *model.Request {
	return &model.Request{
		Model:    "gpt-4o-mini",
		Messages: []model.Message{{Role: model.RoleUser, Content: text}},
	}
}

// requireKind asserts err is a *model.Error of kind and returns it.
func requireKind(t *testing.T, err error, kind model.ErrorKind) *model.Error {
	t.Helper()
	require.Error(t, err)
	var me *model.Error
	require.ErrorAs(t, err, &me, "error %v is not a *model.Error", err)
	require.Equal(t, kind, me.Kind, "error: %v", err)
	return me
}

func TestGenerateNonStreaming(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *model.Response
	}{
		{
			name: "text with usage",
			body: `{"id":"chatcmpl-1","object":"chat.completion","created":1718000000,
				"model":"gpt-4o-mini-2024-07-18",
				"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there.","refusal":null},
					"logprobs":null,"finish_reason":"stop"}],
				"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`,
			want: &model.Response{
				Content:    "Hello there.",
				Usage:      model.Usage{InputTokens: 9, OutputTokens: 3},
				StopReason: model.StopEnd,
				Model:      "gpt-4o-mini-2024-07-18",
			},
		},
		{
			name: "tool calls with stop finish reason and empty arguments",
			body: `{"model":"llama3.1","choices":[{"index":0,"message":{"role":"assistant","content":null,
				"tool_calls":[
					{"id":"call_1","type":"function","function":{"name":"search","arguments":"{\"q\":\"go\"}"}},
					{"id":"call_2","type":"function","function":{"name":"now","arguments":""}}]},
				"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":8}}`,
			want: &model.Response{
				ToolCalls: []model.ToolCall{
					{ID: "call_1", Name: "search", Arguments: `{"q":"go"}`},
					{ID: "call_2", Name: "now", Arguments: "{}"},
				},
				Usage:      model.Usage{InputTokens: 20, OutputTokens: 8},
				StopReason: model.StopToolCalls,
				Model:      "llama3.1",
			},
		},
		{
			name: "truncated by max_tokens",
			body: `{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Once upon"},"finish_reason":"length"}]}`,
			want: &model.Response{Content: "Once upon", StopReason: model.StopLength, Model: "m"},
		},
		{
			name: "arguments sent as an object and a missing id",
			body: `{"model":"m","choices":[{"index":0,"message":{"role":"assistant",
				"tool_calls":[{"type":"function","function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}]}`,
			want: &model.Response{
				ToolCalls:  []model.ToolCall{{ID: "call_0", Name: "f", Arguments: `{"a":1}`}},
				StopReason: model.StopToolCalls,
				Model:      "m",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, reqs := newServer(t, jsonHandler(http.StatusOK, tt.body))
			c := New(Options{BaseURL: srv.URL + "/v1", APIKey: "sk-test"})

			got, err := c.Generate(t.Context(), userRequest("hi"), nil)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)

			r := next(t, reqs)
			require.Equal(t, "/v1/chat/completions", r.path)
			require.NotContains(t, r.body, "stream")
			require.NotContains(t, r.body, "stream_options")
		})
	}
}

func TestGenerateNonStreamingFailures(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		kind    model.ErrorKind
		message string
	}{
		{"error object in a 200 body", `{"error":{"message":"Upstream overloaded","code":502}}`, model.ErrOverloaded, "Upstream overloaded"},
		{"no choices", `{"model":"m","choices":[]}`, model.ErrProtocol, "no choices"},
		{"invalid JSON", `{"model":`, model.ErrProtocol, "invalid JSON"},
		{"HTML instead of JSON", `<html>hello</html>`, model.ErrProtocol, "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, jsonHandler(http.StatusOK, tt.body))
			_, err := New(Options{BaseURL: srv.URL}).Generate(t.Context(), userRequest("hi"), nil)
			me := requireKind(t, err, tt.kind)
			require.Contains(t, me.Message, tt.message)
		})
	}
}

func TestResponseBodyIsBounded(t *testing.T) {
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"model":"`)
		chunk := strings.Repeat("a", 1<<20)
		for range maxResponseBytes>>20 + 1 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}`)
	})
	_, err := New(Options{BaseURL: srv.URL}).Generate(t.Context(), userRequest("hi"), nil)
	me := requireKind(t, err, model.ErrProtocol)
	require.Contains(t, me.Message, "exceeds")
}

func TestRequestBody(t *testing.T) {
	temp := 0.2
	zero := 0.0
	full := &model.Request{
		Model:  "gpt-4o",
		System: "You are terse.",
		Messages: []model.Message{
			{Role: model.RoleUser, Content: "Weather in Paris?"},
		},
		Tools: []model.ToolDef{
			{
				Name:        "get_weather",
				Description: "Current weather for a city.",
				Parameters: map[string]any{
					"type":       "object",
					"properties": map[string]any{"city": map[string]any{"type": "string"}},
					"required":   []any{"city"},
				},
			},
			{Name: "now", Description: "The time."},
		},
		Temperature: &temp,
		MaxTokens:   256,
		OutputSchema: map[string]any{
			"type":       "object",
			"properties": map[string]any{"answer": map[string]any{"type": "string"}},
		},
		OutputSchemaName: "verdict",
	}

	tests := []struct {
		name   string
		opts   Options
		req    *model.Request
		stream bool
		check  func(t *testing.T, r received)
	}{
		{
			name: "everything set, streaming",
			opts: Options{
				APIKey:  "sk-test",
				Headers: map[string]string{"OpenAI-Organization": "org-1", "X-Title": "troupe"},
			},
			req:    full,
			stream: true,
			check: func(t *testing.T, r received) {
				require.Equal(t, "Bearer sk-test", r.header.Get("Authorization"))
				require.Equal(t, "org-1", r.header.Get("OpenAI-Organization"))
				require.Equal(t, "troupe", r.header.Get("X-Title"))
				require.Equal(t, "application/json", r.header.Get("Content-Type"))
				require.Equal(t, "text/event-stream", r.header.Get("Accept"))

				var body struct {
					Model          string          `json:"model"`
					Messages       json.RawMessage `json:"messages"`
					Tools          json.RawMessage `json:"tools"`
					Temperature    *float64        `json:"temperature"`
					MaxTokens      int             `json:"max_tokens"`
					ResponseFormat json.RawMessage `json:"response_format"`
					Stream         bool            `json:"stream"`
					StreamOptions  json.RawMessage `json:"stream_options"`
				}
				require.NoError(t, json.Unmarshal(r.raw, &body))
				require.Equal(t, "gpt-4o", body.Model)
				require.JSONEq(t, `[
					{"role":"system","content":"You are terse."},
					{"role":"user","content":"Weather in Paris?"}]`, string(body.Messages))
				require.JSONEq(t, `[
					{"type":"function","function":{"name":"get_weather","description":"Current weather for a city.",
						"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
					{"type":"function","function":{"name":"now","description":"The time.",
						"parameters":{"type":"object","properties":{}}}}]`, string(body.Tools))
				require.NotNil(t, body.Temperature)
				require.InDelta(t, 0.2, *body.Temperature, 1e-9)
				require.Equal(t, 256, body.MaxTokens)
				require.JSONEq(t, `{"type":"json_schema","json_schema":{"name":"verdict","strict":false,
					"schema":{"type":"object","properties":{"answer":{"type":"string"}}}}}`, string(body.ResponseFormat))
				require.True(t, body.Stream)
				require.JSONEq(t, `{"include_usage":true}`, string(body.StreamOptions))
				require.NotContains(t, r.body, "max_completion_tokens")
			},
		},
		{
			name: "minimal, no key",
			opts: Options{},
			req:  userRequest("hi"),
			check: func(t *testing.T, r received) {
				require.Empty(t, r.header.Values("Authorization"))
				for _, key := range []string{"temperature", "tools", "max_tokens", "response_format", "stream", "stream_options"} {
					require.NotContains(t, r.body, key)
				}
				require.JSONEq(t, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, string(r.raw))
			},
		},
		{
			name: "zero temperature is sent, schema name defaults",
			opts: Options{},
			req: &model.Request{
				Model:        "m",
				Messages:     []model.Message{{Role: model.RoleUser, Content: "hi"}},
				Temperature:  &zero,
				OutputSchema: map[string]any{"type": "object"},
			},
			check: func(t *testing.T, r received) {
				require.Contains(t, r.body, "temperature")
				require.Equal(t, 0.0, r.body["temperature"])
				require.Equal(t, "output", r.body["response_format"].(map[string]any)["json_schema"].(map[string]any)["name"])
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, reqs := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.stream {
					writeSSE(w, `data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}`+"\n\n", "data: [DONE]\n\n")
					return
				}
				jsonHandler(http.StatusOK, `{"choices":[{"index":0,"message":{"content":"ok"},"finish_reason":"stop"}]}`)(w, r)
			})
			tt.opts.BaseURL = srv.URL + "/v1/" // a trailing slash is tolerated
			var onDelta func(model.Delta)
			if tt.stream {
				onDelta = func(model.Delta) {}
			}
			resp, err := New(tt.opts).Generate(t.Context(), tt.req, onDelta)
			require.NoError(t, err)
			require.Equal(t, "ok", resp.Content)

			r := next(t, reqs)
			require.Equal(t, "/v1/chat/completions", r.path)
			tt.check(t, r)
		})
	}
}

func TestToolHistorySerialization(t *testing.T) {
	srv, reqs := newServer(t, jsonHandler(http.StatusOK,
		`{"model":"gpt-4o","choices":[{"index":0,"message":{"content":"It is sunny."},"finish_reason":"stop"}]}`))
	req := &model.Request{
		Model:  "gpt-4o",
		System: "sys",
		Messages: []model.Message{
			{Role: model.RoleUser, Content: "Weather and time in Paris?"},
			{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{
				{ID: "call_a", Name: "get_weather", Arguments: `{"city":"Paris"}`},
				{ID: "call_b", Name: "now", Arguments: ""},
			}},
			{Role: model.RoleTool, ToolCallID: "call_a", Name: "get_weather", Content: `{"sky":"clear"}`},
			{Role: model.RoleTool, ToolCallID: "call_b", Name: "now", Content: "unknown timezone", IsError: true},
			{Role: model.RoleAssistant, Content: "Let me check once more.", ToolCalls: []model.ToolCall{
				{ID: "call_c", Name: "now", Arguments: `{"tz":"CET"}`},
			}},
			{Role: model.RoleTool, ToolCallID: "call_c", Name: "now", Content: "14:00"},
			{Role: model.RoleAssistant, Content: "Done."},
			{Role: model.RoleUser, Content: "Thanks"},
		},
	}
	resp, err := New(Options{BaseURL: srv.URL}).Generate(t.Context(), req, nil)
	require.NoError(t, err)
	require.Equal(t, "It is sunny.", resp.Content)

	r := next(t, reqs)
	var body struct {
		Messages json.RawMessage `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(r.raw, &body))
	require.JSONEq(t, `[
		{"role":"system","content":"sys"},
		{"role":"user","content":"Weather and time in Paris?"},
		{"role":"assistant","content":null,"tool_calls":[
			{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
			{"id":"call_b","type":"function","function":{"name":"now","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"call_a","content":"{\"sky\":\"clear\"}"},
		{"role":"tool","tool_call_id":"call_b","content":"unknown timezone"},
		{"role":"assistant","content":"Let me check once more.","tool_calls":[
			{"id":"call_c","type":"function","function":{"name":"now","arguments":"{\"tz\":\"CET\"}"}}]},
		{"role":"tool","tool_call_id":"call_c","content":"14:00"},
		{"role":"assistant","content":"Done."},
		{"role":"user","content":"Thanks"}]`, string(body.Messages))
}

// textStream is a streamed text answer as OpenAI sends it, with a comment,
// an event line and CRLF line endings mixed in.
const textStream = ": OPENROUTER PROCESSING\r\n\r\n" +
	`data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}` + "\r\n\r\n" +
	`data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
	"event: message\n" +
	`data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"lo, \"wörld\""},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
	`data:{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"!\n"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
	`data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n" +
	`data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}` + "\n\n" +
	"data: [DONE]\n\n"

func TestStreamText(t *testing.T) {
	// Explicit awkward splits: inside "data:", inside a JSON string, inside
	// an escape, between \r and \n, and between an event's two newlines.
	awkward := []string{
		textStream[:22], // ": OPENROUTER PROCESSIN" ...
		textStream[22:45],
	}
	rest := textStream[45:]
	for _, cut := range []string{`"conte`, `"Hel`, "\r", `lo, \`, "da", `"!\`, "\n", `"completion_`, "[DO"} {
		i := strings.Index(rest, cut) + len(cut)
		awkward = append(awkward, rest[:i])
		rest = rest[i:]
	}
	awkward = append(awkward, rest)
	require.Equal(t, textStream, strings.Join(awkward, ""))

	tests := []struct {
		name  string
		parts []string
	}{
		{"whole", []string{textStream}},
		{"awkward splits", awkward},
		{"every byte", chop(textStream, 1)},
		{"every 7 bytes", chop(textStream, 7)},
		{"every 64 bytes", chop(textStream, 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, reqs := newServer(t, sseHandler(tt.parts...))
			onDelta, deltas := collect()
			resp, err := New(Options{BaseURL: srv.URL, APIKey: "sk-test"}).Generate(t.Context(), userRequest("hi"), onDelta)
			require.NoError(t, err)
			require.Equal(t, []string{"Hel", `lo, "wörld"`, "!\n"}, deltas())
			require.Equal(t, &model.Response{
				Content:    "Hello, \"wörld\"!\n",
				Usage:      model.Usage{InputTokens: 11, OutputTokens: 4},
				StopReason: model.StopEnd,
				Model:      "gpt-4o-mini-2024-07-18",
			}, resp)
			r := next(t, reqs)
			require.Equal(t, true, r.body["stream"])
		})
	}
}

// toolStream carries two parallel tool calls whose arguments arrive
// interleaved over several chunks; the second call's id is repeated, as some
// servers do.
const toolStream = `data: {"id":"c2","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}` + "\n\n" +
	`data: {"id":"c2","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]},"finish_reason":null}]}` + "\n\n" +
	`data: {"id":"c2","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]},"finish_reason":null}]}` + "\n\n" +
	`data: {"id":"c2","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\": \"Par"}}]},"finish_reason":null}]}` + "\n\n" +
	`data: {"id":"c2","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"arguments":"{\"tz\":"}}]},"finish_reason":null}]}` + "\n\n" +
	`data: {"id":"c2","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"is\"}"}}]},"finish_reason":null}]}` + "\n\n" +
	`data: {"id":"c2","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"arguments":" \"CET\"}"}}]},"finish_reason":null}]}` + "\n\n" +
	`data: {"id":"c2","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\n" +
	`data: {"id":"c2","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":80,"completion_tokens":31,"total_tokens":111}}` + "\n\n" +
	"data: [DONE]\n\n"

func TestStreamToolCalls(t *testing.T) {
	for _, n := range []int{len(toolStream), 5, 33} {
		t.Run(fmt.Sprintf("split every %d bytes", n), func(t *testing.T) {
			srv, _ := newServer(t, sseHandler(chop(toolStream, n)...))
			onDelta, deltas := collect()
			resp, err := New(Options{BaseURL: srv.URL}).Generate(t.Context(), userRequest("hi"), onDelta)
			require.NoError(t, err)
			require.Empty(t, deltas())
			require.Equal(t, &model.Response{
				ToolCalls: []model.ToolCall{
					{ID: "call_a", Name: "get_weather", Arguments: `{"city": "Paris"}`},
					{ID: "call_b", Name: "get_time", Arguments: `{"tz": "CET"}`},
				},
				Usage:      model.Usage{InputTokens: 80, OutputTokens: 31},
				StopReason: model.StopToolCalls,
				Model:      "gpt-4o",
			}, resp)
		})
	}
}

func TestStreamToolCallsWithoutIndex(t *testing.T) {
	// Some servers send each call whole, with no index and a stop reason.
	srv, _ := newServer(t, sseHandler(
		`data: {"model":"llama3.1","choices":[{"index":0,"delta":{"tool_calls":[{"id":"x1","function":{"name":"a","arguments":"{}"}}]}}]}`+"\n\n",
		`data: {"model":"llama3.1","choices":[{"index":0,"delta":{"tool_calls":[{"id":"x2","function":{"name":"b","arguments":""}}]}}]}`+"\n\n",
		`data: {"model":"llama3.1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n",
		"data: [DONE]\n\n",
	))
	resp, err := New(Options{BaseURL: srv.URL}).Generate(t.Context(), userRequest("hi"), func(model.Delta) {})
	require.NoError(t, err)
	require.Equal(t, []model.ToolCall{
		{ID: "x1", Name: "a", Arguments: "{}"},
		{ID: "x2", Name: "b", Arguments: "{}"},
	}, resp.ToolCalls)
	require.Equal(t, model.StopToolCalls, resp.StopReason)
}

func TestStreamWithoutDoneAfterFinishReason(t *testing.T) {
	// A server that omits [DONE] but finished the answer is accepted.
	srv, _ := newServer(t, sseHandler(
		`data: {"model":"m","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":null}]}`+"\n\n",
		`data: {"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`+"\n\n",
	))
	resp, err := New(Options{BaseURL: srv.URL}).Generate(t.Context(), userRequest("hi"), func(model.Delta) {})
	require.NoError(t, err)
	require.Equal(t, &model.Response{
		Content:    "ok",
		Usage:      model.Usage{InputTokens: 1, OutputTokens: 2},
		StopReason: model.StopLength,
		Model:      "m",
	}, resp)
}

func TestStreamIgnoredByServer(t *testing.T) {
	// A server that ignores "stream": true answers with JSON; the content
	// still reaches onDelta, once.
	srv, _ := newServer(t, jsonHandler(http.StatusOK,
		`{"model":"m","choices":[{"index":0,"message":{"content":"whole answer"},"finish_reason":"stop"}]}`))
	onDelta, deltas := collect()
	resp, err := New(Options{BaseURL: srv.URL}).Generate(t.Context(), userRequest("hi"), onDelta)
	require.NoError(t, err)
	require.Equal(t, []string{"whole answer"}, deltas())
	require.Equal(t, "whole answer", resp.Content)
}

func TestStreamFailures(t *testing.T) {
	const first = `data: {"model":"m","choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}` + "\n\n"
	tests := []struct {
		name    string
		parts   []string
		kind    model.ErrorKind
		message string
	}{
		{
			name:    "server_error object mid-stream",
			parts:   []string{first, `data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}` + "\n\n"},
			kind:    model.ErrOverloaded,
			message: "The server had an error while processing your request.",
		},
		{
			name:    "rate limit object mid-stream, split",
			parts:   []string{first, `data: {"error":{"message":"Rate limit reac`, `hed","type":"requests","code":"rate_limit_exceeded"}}` + "\n\n"},
			kind:    model.ErrRateLimit,
			message: "Rate limit reached",
		},
		{
			name:    "numeric code after an error event",
			parts:   []string{first, "event: error\n", `data: {"error":{"message":"Provider returned error","code":502}}` + "\n\n"},
			kind:    model.ErrOverloaded,
			message: "Provider returned error",
		},
		{
			name:    "other error object",
			parts:   []string{first, `data: {"error":{"message":"Invalid tool schema","type":"invalid_request_error"}}` + "\n\n"},
			kind:    model.ErrProtocol,
			message: "Invalid tool schema",
		},
		{
			name:    "cut without [DONE] or finish_reason",
			parts:   []string{first},
			kind:    model.ErrProtocol,
			message: "stream ended early",
		},
		{
			name:    "cut mid-JSON",
			parts:   []string{first, `data: {"model":"m","choices":[{"index":0,"del`},
			kind:    model.ErrProtocol,
			message: "stream ended early",
		},
		{
			name:    "invalid JSON",
			parts:   []string{first, "data: {not json}\n\n", "data: [DONE]\n\n"},
			kind:    model.ErrProtocol,
			message: "invalid JSON",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, sseHandler(tt.parts...))
			onDelta, deltas := collect()
			_, err := New(Options{BaseURL: srv.URL, Name: "ollama"}).Generate(t.Context(), userRequest("hi"), onDelta)
			me := requireKind(t, err, tt.kind)
			require.Equal(t, "ollama", me.Provider)
			require.True(t, strings.HasPrefix(me.Message, tt.message), "message %q", me.Message)
			require.Equal(t, []string{"partial"}, deltas())
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		kind       model.ErrorKind
		message    string
		retryAfter time.Duration
	}{
		{
			name:       "429 with Retry-After",
			status:     http.StatusTooManyRequests,
			header:     map[string]string{"Retry-After": "2"},
			body:       `{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			kind:       model.ErrRateLimit,
			message:    "Rate limit reached for gpt-4o",
			retryAfter: 2 * time.Second,
		},
		{
			name:    "401",
			status:  http.StatusUnauthorized,
			body:    `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			kind:    model.ErrAuth,
			message: "Incorrect API key provided.",
		},
		{
			name:    "500",
			status:  http.StatusInternalServerError,
			body:    `{"error":{"message":"The server had an error processing your request.","type":"server_error"}}`,
			kind:    model.ErrOverloaded,
			message: "The server had an error processing your request.",
		},
		{
			name:    "400 context length",
			status:  http.StatusBadRequest,
			body:    `{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`,
			kind:    model.ErrContextLength,
			message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
		},
		{
			name:    "400 context length by code only",
			status:  http.StatusBadRequest,
			body:    `{"error":{"message":"Input is too long for requested model.","code":"context_length_exceeded"}}`,
			kind:    model.ErrContextLength,
			message: "Input is too long for requested model.",
		},
		{
			name:    "404 with a string error (Ollama)",
			status:  http.StatusNotFound,
			body:    `{"error":"model \"llama9\" not found, try pulling it first"}`,
			kind:    model.ErrBadRequest,
			message: `model "llama9" not found, try pulling it first`,
		},
		{
			name:    "400 with a top-level message (vLLM)",
			status:  http.StatusBadRequest,
			body:    `{"object":"error","message":"temperature must be non-negative","type":"BadRequestError","code":400}`,
			kind:    model.ErrBadRequest,
			message: "temperature must be non-negative",
		},
		{
			name:    "502 with an HTML body",
			status:  http.StatusBadGateway,
			body:    "<html>\n  <body>Bad   gateway</body>\n</html>\n",
			kind:    model.ErrOverloaded,
			message: "<html> <body>Bad gateway</body> </html>",
		},
		{
			name:    "long body is cut to a snippet",
			status:  http.StatusBadRequest,
			body:    strings.Repeat("x", 5000),
			kind:    model.ErrBadRequest,
			message: strings.Repeat("x", maxSnippetChars) + "…",
		},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.name, stream), func(t *testing.T) {
				srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
					for k, v := range tt.header {
						w.Header().Set(k, v)
					}
					jsonHandler(tt.status, tt.body)(w, r)
				})
				var onDelta func(model.Delta)
				if stream {
					onDelta = func(model.Delta) {}
				}
				_, err := New(Options{BaseURL: srv.URL, APIKey: "sk-test"}).Generate(t.Context(), userRequest("hi"), onDelta)
				me := requireKind(t, err, tt.kind)
				require.Equal(t, tt.status, me.StatusCode)
				require.Equal(t, "openai", me.Provider)
				require.Equal(t, tt.message, me.Message)
				require.Equal(t, tt.retryAfter, me.RetryAfter)
			})
		}
	}
}

func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more
	_, err := New(Options{BaseURL: url}).Generate(t.Context(), userRequest("hi"), nil)
	requireKind(t, err, model.ErrNetwork)
	require.True(t, model.Retryable(err))
}

func TestCancelDuringStream(t *testing.T) {
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeSSE(w, `data: {"model":"m","choices":[{"index":0,"delta":{"content":"thinking"},"finish_reason":null}]}`+"\n\n")
		// Then stall, as a slow model would, until the client goes away.
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cancelled := make(chan time.Time, 1)
	onDelta := func(model.Delta) {
		go func() {
			time.Sleep(20 * time.Millisecond) // let the reader block on the stalled stream
			cancelled <- time.Now()
			cancel()
		}()
	}
	_, err := New(Options{BaseURL: srv.URL}).Generate(ctx, userRequest("hi"), onDelta)
	returned := time.Now()
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, model.Retryable(err))
	require.Less(t, returned.Sub(<-cancelled), 100*time.Millisecond)
}

func TestDeadlineDuringStream(t *testing.T) {
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeSSE(w, ": waiting\n\n")
		<-r.Context().Done()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := New(Options{BaseURL: srv.URL}).Generate(ctx, userRequest("hi"), func(model.Delta) {})
	requireKind(t, err, model.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestAPIKeyNeverInErrors(t *testing.T) {
	const key = "sk-proj-SECRET0123456789"
	const azureKey = "azure-SECRET-abcdef"
	// A hostile or careless server echoes the credentials it received.
	echo := func(r *http.Request) string {
		return r.Header.Get("Authorization") + " " + r.Header.Get("Api-Key")
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		stream  bool
	}{
		{"401 JSON message", func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": "bad key " + echo(r)}})
			jsonHandler(http.StatusUnauthorized, string(b))(w, r)
		}, false},
		{"400 plain body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "rejected "+echo(r))
		}, false},
		{"error in a 200 body", func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"error": echo(r)})
			jsonHandler(http.StatusOK, string(b))(w, r)
		}, false},
		{"error mid-stream", func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": echo(r), "type": "server_error"}})
			writeSSE(w, "data: "+string(b)+"\n\n")
		}, true},
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		for e := err; e != nil; e = errors.Unwrap(e) {
			for _, s := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
				require.NotContains(t, s, key)
				require.NotContains(t, s, azureKey)
			}
		}
	}
	opts := func(url string) Options {
		return Options{BaseURL: url, APIKey: key, Headers: map[string]string{"api-key": azureKey}}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, reqs := newServer(t, tt.handler)
			var onDelta func(model.Delta)
			if tt.stream {
				onDelta = func(model.Delta) {}
			}
			_, err := New(opts(srv.URL)).Generate(t.Context(), userRequest("hi"), onDelta)
			check(t, err)
			require.Contains(t, err.Error(), "[redacted]")
			require.Equal(t, "Bearer "+key, next(t, reqs).header.Get("Authorization"))
		})
	}
	t.Run("transport error", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		_, err := New(opts(srv.URL)).Generate(t.Context(), userRequest("hi"), nil)
		check(t, err)
	})
}

func TestConcurrentUse(t *testing.T) {
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeSSE(w, chop(textStream, 50)...)
	})
	c := New(Options{BaseURL: srv.URL})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			var sb strings.Builder
			resp, err := c.Generate(t.Context(), userRequest("hi"), func(d model.Delta) { sb.WriteString(d.Content) })
			if err == nil && (resp.Content != sb.String() || resp.Usage.OutputTokens != 4) {
				err = fmt.Errorf("got %q, deltas %q", resp.Content, sb.String())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestNewDefaults(t *testing.T) {
	c := New(Options{})
	require.Equal(t, "openai", c.name)
	require.Equal(t, DefaultBaseURL+"/chat/completions", c.url)
	require.NotNil(t, c.http)
	require.Zero(t, c.http.Timeout)

	c = New(Options{Name: "ollama", BaseURL: OllamaBaseURL + "/"})
	require.Equal(t, "ollama", c.name)
	require.Equal(t, "http://localhost:11434/v1/chat/completions", c.url)
}

func TestStopReason(t *testing.T) {
	tests := []struct {
		finish    string
		toolCalls bool
		want      string
	}{
		{"stop", false, model.StopEnd},
		{"stop", true, model.StopToolCalls},
		{"tool_calls", true, model.StopToolCalls},
		{"function_call", false, model.StopToolCalls},
		{"length", false, model.StopLength},
		{"length", true, model.StopLength},
		{"content_filter", false, model.StopEnd},
		{"", false, model.StopEnd},
		{"", true, model.StopToolCalls},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, stopReason(tt.finish, tt.toolCalls), "finish %q, tool calls %v", tt.finish, tt.toolCalls)
	}
}
