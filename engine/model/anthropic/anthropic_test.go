package anthropic

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
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

const testKey = "sk-ant-test-SECRET-0123456789"

// recorded is a request as the test server saw it.
type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// recorder keeps the last request a test server received.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

func (r *recorder) record(t *testing.T, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Errorf("read request body: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, recorded{method: req.Method, path: req.URL.Path, header: req.Header.Clone(), body: body})
}

func (r *recorder) last(t *testing.T) recorded {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.reqs, "no request recorded")
	return r.reqs[len(r.reqs)-1]
}

// bodyMap decodes a recorded request body.
func (r recorded) bodyMap(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m))
	return m
}

// newTestClient starts a server running handler and returns a client for it.
// The base URL has a trailing slash, which the client must tolerate.
func newTestClient(t *testing.T, handler http.HandlerFunc) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(t, r)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	c := New(Options{
		BaseURL:    srv.URL + "/",
		APIKey:     testKey,
		Headers:    map[string]string{"anthropic-beta": "test-beta"},
		HTTPClient: srv.Client(),
	})
	return c, rec
}

// jsonHandler answers every request with status and body.
func jsonHandler(status int, body string, header map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// sseHandler writes chunks one by one, flushing and pausing after each so the
// client sees them as separate reads.
func sseHandler(t *testing.T, chunks []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		flusher, ok := w.(http.Flusher)
		if !ok {
			t.Error("ResponseWriter is not a Flusher")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		flusher.Flush()
		for _, c := range chunks {
			if _, err := io.WriteString(w, c); err != nil {
				return
			}
			flusher.Flush()
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// event formats one server-sent event the way Anthropic sends it.
func event(name, data string) string {
	return "event: " + name + "\ndata: " + data + "\n\n"
}

// cutAfter splits s right after each mark, searching forward from the previous
// cut, to place splits at chosen awkward spots.
func cutAfter(t *testing.T, s string, marks ...string) []string {
	t.Helper()
	var out []string
	for _, m := range marks {
		i := strings.Index(s, m)
		require.GreaterOrEqual(t, i, 0, "mark %q not found", m)
		out = append(out, s[:i+len(m)])
		s = s[i+len(m):]
	}
	return append(out, s)
}

// splitEvery splits s into n-byte chunks.
func splitEvery(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// Stream fixtures.

func messageStart(inputTokens int) string {
	return event("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-test-1","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":1}}}`, inputTokens))
}

func textStart(index int, text string) string {
	return event("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"text","text":%q}}`, index, text))
}

func textDelta(index int, text string) string {
	return event("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%q}}`, index, text))
}

func toolStart(index int, id, name string) string {
	return event("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":%q,"name":%q,"input":{}}}`, index, id, name))
}

func jsonDelta(index int, partial string) string {
	return event("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%q}}`, index, partial))
}

func blockStop(index int) string {
	return event("content_block_stop", fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, index))
}

func messageDelta(stop string, outputTokens int) string {
	return event("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null},"usage":{"output_tokens":%d}}`, stop, outputTokens))
}

const (
	ping        = "event: ping\ndata: {\"type\": \"ping\"}\n\n"
	messageStop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
)

// textStream is a complete streamed text answer: "Hello, world!".
func textStream() string {
	return messageStart(25) +
		textStart(0, "") +
		ping +
		textDelta(0, "Hello") +
		textDelta(0, ", ") +
		textDelta(0, "world") +
		textDelta(0, "!") +
		blockStop(0) +
		messageDelta("end_turn", 15) +
		messageStop
}

// toolStream is a streamed answer with a text block and two tool_use blocks
// whose arguments arrive in several input_json_delta pieces.
func toolStream() string {
	return messageStart(100) +
		textStart(0, "Let me ") +
		textDelta(0, "check.") +
		blockStop(0) +
		toolStart(1, "toolu_01", "read_file") +
		jsonDelta(1, "") +
		jsonDelta(1, `{"pa`) +
		jsonDelta(1, `th": "a.t`) +
		jsonDelta(1, `xt"}`) +
		blockStop(1) +
		ping +
		toolStart(2, "toolu_02", "grep") +
		jsonDelta(2, `{"pattern"`) +
		jsonDelta(2, `: "fo\"o", "li`) +
		jsonDelta(2, `mit": 10}`) +
		blockStop(2) +
		messageDelta("tool_use", 64) +
		messageStop
}

func collect(deltas *[]string) func(model.Delta) {
	return func(d model.Delta) { *deltas = append(*deltas, d.Content) }
}

func simpleRequest() *model.Request {
	return &model.Request{Model: "claude-test-1", Messages: []model.Message{{Role: model.RoleUser, Content: "Hi"}}}
}

func requireKind(t *testing.T, err error, kind model.ErrorKind) *model.Error {
	t.Helper()
	require.Error(t, err)
	var me *model.Error
	require.ErrorAs(t, err, &me, "error %v is not a *model.Error", err)
	require.Equal(t, kind, me.Kind, "error: %v", err)
	require.Equal(t, "anthropic", me.Provider)
	return me
}

func TestGenerateNonStreamingText(t *testing.T) {
	c, rec := newTestClient(t, jsonHandler(200, `{
		"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test-1-20250101",
		"content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}],
		"stop_reason": "end_turn", "stop_sequence": null,
		"usage": {"input_tokens": 12, "output_tokens": 5}
	}`, nil))

	resp, err := c.Generate(t.Context(), simpleRequest(), nil)
	require.NoError(t, err)
	require.Equal(t, &model.Response{
		Content:    "Hello, world",
		Usage:      model.Usage{InputTokens: 12, OutputTokens: 5},
		StopReason: model.StopEnd,
		Model:      "claude-test-1-20250101",
	}, resp)

	r := rec.last(t)
	require.Equal(t, http.MethodPost, r.method)
	require.Equal(t, "/v1/messages", r.path)
	require.NotContains(t, r.bodyMap(t), "stream")
}

func TestGenerateNonStreamingToolUse(t *testing.T) {
	c, _ := newTestClient(t, jsonHandler(200, `{
		"type": "message", "role": "assistant", "model": "claude-test-1",
		"content": [
			{"type": "thinking", "thinking": "hmm", "signature": "x"},
			{"type": "text", "text": "Checking."},
			{"type": "tool_use", "id": "toolu_01", "name": "read_file", "input": {"path": "a.txt"}},
			{"type": "tool_use", "id": "toolu_02", "name": "now", "input": {}}
		],
		"stop_reason": "tool_use",
		"usage": {"input_tokens": 40, "output_tokens": 22}
	}`, nil))

	resp, err := c.Generate(t.Context(), simpleRequest(), nil)
	require.NoError(t, err)
	require.Equal(t, "Checking.", resp.Content)
	require.Equal(t, []model.ToolCall{
		{ID: "toolu_01", Name: "read_file", Arguments: `{"path":"a.txt"}`},
		{ID: "toolu_02", Name: "now", Arguments: `{}`},
	}, resp.ToolCalls)
	require.Equal(t, model.StopToolCalls, resp.StopReason)
}

func TestGenerateNonStreamingStopReasons(t *testing.T) {
	for reason, want := range map[string]string{
		"end_turn":      model.StopEnd,
		"stop_sequence": model.StopEnd,
		"tool_use":      model.StopToolCalls,
		"max_tokens":    model.StopLength,
	} {
		t.Run(reason, func(t *testing.T) {
			c, _ := newTestClient(t, jsonHandler(200, `{"model":"m","content":[{"type":"text","text":"x"}],"stop_reason":"`+reason+`","usage":{}}`, nil))
			resp, err := c.Generate(t.Context(), simpleRequest(), nil)
			require.NoError(t, err)
			require.Equal(t, want, resp.StopReason)
		})
	}
}

func TestRequestBody(t *testing.T) {
	c, rec := newTestClient(t, jsonHandler(200, `{"model":"m","content":[],"stop_reason":"end_turn","usage":{}}`, nil))
	req := &model.Request{
		Model:  "claude-test-1",
		System: "You are <helpful> & terse.",
		Messages: []model.Message{
			{Role: model.RoleUser, Content: "Read a.txt and b.txt"},
			{Role: model.RoleAssistant, Content: "Reading both.", ToolCalls: []model.ToolCall{
				{ID: "toolu_01", Name: "read_file", Arguments: `{"path": "a.txt"}`},
				{ID: "toolu_02", Name: "read_file", Arguments: `{"path":"b.txt"}`},
			}},
			{Role: model.RoleTool, ToolCallID: "toolu_01", Name: "read_file", Content: "contents of a"},
			{Role: model.RoleTool, ToolCallID: "toolu_02", Name: "read_file", Content: "no such file", IsError: true},
		},
		Tools: []model.ToolDef{{
			Name:        "read_file",
			Description: "Read a file.",
			Parameters: map[string]any{
				"type":       "object",
				"properties": map[string]any{"path": map[string]any{"type": "string"}},
				"required":   []string{"path"},
			},
		}},
	}
	_, err := c.Generate(t.Context(), req, nil)
	require.NoError(t, err)

	r := rec.last(t)
	require.Equal(t, testKey, r.header.Get("x-api-key"))
	require.Equal(t, "2023-06-01", r.header.Get("anthropic-version"))
	require.Equal(t, "application/json", r.header.Get("content-type"))
	require.Equal(t, "test-beta", r.header.Get("anthropic-beta"))
	require.Empty(t, r.header.Get("authorization"))

	require.JSONEq(t, `{
		"model": "claude-test-1",
		"max_tokens": 4096,
		"system": "You are <helpful> & terse.",
		"messages": [
			{"role": "user", "content": [{"type": "text", "text": "Read a.txt and b.txt"}]},
			{"role": "assistant", "content": [
				{"type": "text", "text": "Reading both."},
				{"type": "tool_use", "id": "toolu_01", "name": "read_file", "input": {"path": "a.txt"}},
				{"type": "tool_use", "id": "toolu_02", "name": "read_file", "input": {"path": "b.txt"}}
			]},
			{"role": "user", "content": [
				{"type": "tool_result", "tool_use_id": "toolu_01", "content": "contents of a"},
				{"type": "tool_result", "tool_use_id": "toolu_02", "content": "no such file", "is_error": true}
			]}
		],
		"tools": [{
			"name": "read_file",
			"description": "Read a file.",
			"input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
		}]
	}`, string(r.body))

	// Roles alternate, starting with the user.
	msgs := r.bodyMap(t)["messages"].([]any)
	for i, m := range msgs {
		want := "user"
		if i%2 == 1 {
			want = "assistant"
		}
		require.Equal(t, want, m.(map[string]any)["role"], "message %d", i)
	}
}

func TestRequestMergesSameRoleTurns(t *testing.T) {
	c, rec := newTestClient(t, jsonHandler(200, `{"model":"m","content":[],"stop_reason":"end_turn","usage":{}}`, nil))
	req := &model.Request{
		Model: "claude-test-1",
		Messages: []model.Message{
			{Role: model.RoleUser, Content: "first"},
			{Role: model.RoleUser, Content: "second"},
			{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{{ID: "t1", Name: "now", Arguments: ""}}},
			{Role: model.RoleTool, ToolCallID: "t1", Content: "noon"},
			{Role: model.RoleUser, Content: "and now?"},
			{Role: model.RoleAssistant, Content: "Part one."},
			{Role: model.RoleAssistant, Content: "Part two."},
		},
	}
	_, err := c.Generate(t.Context(), req, nil)
	require.NoError(t, err)
	body := rec.last(t).bodyMap(t)
	got, err := json.Marshal(body["messages"])
	require.NoError(t, err)
	require.JSONEq(t, `[
		{"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
		{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "now", "input": {}}]},
		{"role": "user", "content": [
			{"type": "tool_result", "tool_use_id": "t1", "content": "noon"},
			{"type": "text", "text": "and now?"}
		]},
		{"role": "assistant", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]}
	]`, string(got))
	require.NotContains(t, body, "tools")
	require.NotContains(t, body, "system")
}

func TestRequestOptionalFields(t *testing.T) {
	c, rec := newTestClient(t, sseHandler(t, []string{textStream()}))
	temp := 0.0
	req := simpleRequest()
	req.Temperature = &temp
	req.MaxTokens = 123
	_, err := c.Generate(t.Context(), req, func(model.Delta) {})
	require.NoError(t, err)

	body := rec.last(t).bodyMap(t)
	require.Equal(t, 0.0, body["temperature"], "a temperature of 0 is still sent")
	require.Equal(t, 123.0, body["max_tokens"])
	require.Equal(t, true, body["stream"])
}

func TestOutputSchemaInstruction(t *testing.T) {
	schema := map[string]any{
		"type":       "object",
		"properties": map[string]any{"answer": map[string]any{"type": "string"}},
		"required":   []string{"answer"},
	}
	schemaJSON := `{"properties":{"answer":{"type":"string"}},"required":["answer"],"type":"object"}`

	for _, system := range []string{"Be terse.", ""} {
		t.Run(fmt.Sprintf("system=%q", system), func(t *testing.T) {
			c, rec := newTestClient(t, jsonHandler(200, `{"model":"m","content":[{"type":"text","text":"{\"answer\":\"x\"}"}],"stop_reason":"end_turn","usage":{}}`, nil))
			req := simpleRequest()
			req.System = system
			req.OutputSchema = schema
			req.OutputSchemaName = "verdict"
			resp, err := c.Generate(t.Context(), req, nil)
			require.NoError(t, err)
			require.Equal(t, `{"answer":"x"}`, resp.Content)

			body := rec.last(t).bodyMap(t)
			got, _ := body["system"].(string)
			if system != "" {
				require.True(t, strings.HasPrefix(got, system+"\n\n"), "system prompt %q", got)
			}
			require.Contains(t, got, "only a JSON object")
			require.Contains(t, got, "verdict")
			require.True(t, strings.HasSuffix(got, schemaJSON), "system prompt %q", got)
			require.NotContains(t, body, "response_format")
		})
	}
}

func TestStreamTextDeltas(t *testing.T) {
	// Cut mid "event:" line, mid JSON, between "\n" and "\n", and mid data line.
	chunks := cutAfter(t, textStream(),
		"eve",
		`"input_tok`,
		"event: content_block_start\n",
		"event: ping\ndata: {\"type\": \"ping\"}\n",
		`"text":"Hel`,
		"event: content_block_delta\nda",
		`"world"}}`,
		"\n",
		"message_",
	)
	c, rec := newTestClient(t, sseHandler(t, chunks))

	var deltas []string
	resp, err := c.Generate(t.Context(), simpleRequest(), collect(&deltas))
	require.NoError(t, err)
	require.Equal(t, []string{"Hello", ", ", "world", "!"}, deltas)
	require.Equal(t, "Hello, world!", resp.Content)
	require.Equal(t, model.StopEnd, resp.StopReason)
	require.Equal(t, "claude-test-1", resp.Model)
	require.Empty(t, resp.ToolCalls)

	r := rec.last(t)
	require.Equal(t, true, r.bodyMap(t)["stream"])
	require.Equal(t, "text/event-stream", r.header.Get("accept"))
}

func TestStreamToolUse(t *testing.T) {
	c, _ := newTestClient(t, sseHandler(t, splitEvery(toolStream(), 7)))

	var deltas []string
	resp, err := c.Generate(t.Context(), simpleRequest(), collect(&deltas))
	require.NoError(t, err)
	require.Equal(t, []string{"Let me ", "check."}, deltas, "initial text of content_block_start is a delta too")
	require.Equal(t, "Let me check.", resp.Content)
	require.Equal(t, []model.ToolCall{
		{ID: "toolu_01", Name: "read_file", Arguments: `{"path": "a.txt"}`},
		{ID: "toolu_02", Name: "grep", Arguments: `{"pattern": "fo\"o", "limit": 10}`},
	}, resp.ToolCalls)
	for _, tc := range resp.ToolCalls {
		_, ok := model.ValidArguments(tc.Arguments)
		require.True(t, ok, "arguments %s", tc.Arguments)
	}
	require.Equal(t, model.StopToolCalls, resp.StopReason)
}

func TestStreamToolUseWithoutInput(t *testing.T) {
	stream := messageStart(10) +
		toolStart(0, "toolu_01", "now") +
		blockStop(0) +
		messageDelta("tool_use", 3) +
		messageStop
	c, _ := newTestClient(t, sseHandler(t, []string{stream}))

	resp, err := c.Generate(t.Context(), simpleRequest(), func(model.Delta) {})
	require.NoError(t, err)
	require.Equal(t, []model.ToolCall{{ID: "toolu_01", Name: "now", Arguments: "{}"}}, resp.ToolCalls)
	require.Equal(t, model.StopToolCalls, resp.StopReason)
}

func TestStreamUsage(t *testing.T) {
	c, _ := newTestClient(t, sseHandler(t, []string{toolStream()}))
	resp, err := c.Generate(t.Context(), simpleRequest(), func(model.Delta) {})
	require.NoError(t, err)
	// input_tokens from message_start, output_tokens (cumulative) from message_delta.
	require.Equal(t, model.Usage{InputTokens: 100, OutputTokens: 64}, resp.Usage)
}

func TestStreamMaxTokens(t *testing.T) {
	stream := messageStart(10) + textStart(0, "") + textDelta(0, "cut") + blockStop(0) + messageDelta("max_tokens", 4096) + messageStop
	c, _ := newTestClient(t, sseHandler(t, []string{stream}))
	resp, err := c.Generate(t.Context(), simpleRequest(), func(model.Delta) {})
	require.NoError(t, err)
	require.Equal(t, model.StopLength, resp.StopReason)
}

// TestStreamParsesAnyReadSplit feeds the streams to the parser one byte per
// read, and half reads, with "\n" and "\r\n" line endings, plus comments,
// unknown events and multi-line data.
func TestStreamParsesAnyReadSplit(t *testing.T) {
	extra := ": keep-alive comment\n" +
		"event: future_event\ndata: not json at all\n\n" +
		"id: 7\nretry: 1000\n\n"
	streams := map[string]string{
		"text": extra + textStream(),
		"tool": toolStream() + extra,
		// data split over two lines is joined with "\n", which is JSON whitespace.
		"multiline": messageStart(5) + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\ndata: \"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n" + messageStop,
	}
	readers := map[string]func(io.Reader) io.Reader{
		"one-byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	c := New(Options{APIKey: testKey})
	for name, stream := range streams {
		for _, crlf := range []bool{false, true} {
			s := stream
			if crlf {
				s = strings.ReplaceAll(stream, "\n", "\r\n")
			}
			var want *model.Response
			var wantDeltas []string
			for rname, wrap := range readers {
				t.Run(fmt.Sprintf("%s/crlf=%v/%s", name, crlf, rname), func(t *testing.T) {
					var deltas []string
					resp, err := c.readStream(t.Context(), wrap(strings.NewReader(s)), collect(&deltas))
					require.NoError(t, err)
					require.NotEmpty(t, deltas)
					if want == nil {
						want, wantDeltas = resp, deltas
						return
					}
					require.Equal(t, want, resp)
					require.Equal(t, wantDeltas, deltas)
				})
			}
		}
	}
}

func TestStreamErrorEvent(t *testing.T) {
	tests := []struct {
		errType, message string
		want             model.ErrorKind
	}{
		{"overloaded_error", "Overloaded", model.ErrOverloaded},
		{"api_error", "Internal server error", model.ErrOverloaded},
		{"rate_limit_error", "Rate limited", model.ErrRateLimit},
		{"authentication_error", "invalid x-api-key", model.ErrAuth},
		{"invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", model.ErrContextLength},
		{"invalid_request_error", "messages: roles must alternate", model.ErrBadRequest},
		{"strange_error", "???", model.ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.errType, func(t *testing.T) {
			stream := messageStart(10) + textStart(0, "") + textDelta(0, "partial") +
				event("error", fmt.Sprintf(`{"type":"error","error":{"type":%q,"message":%q}}`, tt.errType, tt.message))
			c, _ := newTestClient(t, sseHandler(t, splitEvery(stream, 11)))
			var deltas []string
			resp, err := c.Generate(t.Context(), simpleRequest(), collect(&deltas))
			require.Nil(t, resp)
			me := requireKind(t, err, tt.want)
			require.Equal(t, tt.message, me.Message)
			require.Equal(t, []string{"partial"}, deltas)
		})
	}
}

func TestStreamEndsEarly(t *testing.T) {
	full := messageStart(10) + textStart(0, "") + textDelta(0, "Hello") + textDelta(0, " there")
	tests := map[string]string{
		"at event boundary": full,
		"mid data line":     full[:len(full)-20],
		"before any event":  "",
		"after message_delta": messageStart(10) + textStart(0, "") + textDelta(0, "Hi") +
			blockStop(0) + messageDelta("end_turn", 2),
	}
	for name, stream := range tests {
		t.Run(name, func(t *testing.T) {
			c, _ := newTestClient(t, sseHandler(t, splitEvery(stream, 13)))
			resp, err := c.Generate(t.Context(), simpleRequest(), func(model.Delta) {})
			require.Nil(t, resp)
			requireKind(t, err, model.ErrProtocol)
		})
	}
	t.Run("message", func(t *testing.T) {
		c, _ := newTestClient(t, sseHandler(t, []string{full}))
		_, err := c.Generate(t.Context(), simpleRequest(), func(model.Delta) {})
		require.ErrorContains(t, err, "stream ended early")
	})
}

func TestHTTPErrors(t *testing.T) {
	longHTML := "<html><body>" + strings.Repeat("Bad gateway. ", 100) + "</body></html>"
	tests := []struct {
		name       string
		status     int
		body       string
		header     map[string]string
		want       model.ErrorKind
		message    string
		retryAfter time.Duration
	}{
		{
			name: "429 rate limit", status: 429,
			body:   `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`,
			header: map[string]string{"Retry-After": "7"},
			want:   model.ErrRateLimit, message: "Number of request tokens has exceeded your per-minute rate limit", retryAfter: 7 * time.Second,
		},
		{
			name: "401 auth", status: 401,
			body: `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`,
			want: model.ErrAuth, message: "invalid x-api-key",
		},
		{
			name: "529 overloaded", status: 529,
			body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			want: model.ErrOverloaded, message: "Overloaded",
		},
		{
			name: "400 prompt too long", status: 400,
			body: `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}`,
			want: model.ErrContextLength, message: "prompt is too long: 210000 tokens > 200000 maximum",
		},
		{
			name: "400 bad request", status: 400,
			body: `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}`,
			want: model.ErrBadRequest, message: "max_tokens: field required",
		},
		{
			name: "502 non-JSON body", status: 502, body: "  " + longHTML + "\n",
			want: model.ErrOverloaded, message: string([]rune(longHTML)[:300]) + "…",
		},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.name, stream), func(t *testing.T) {
				c, _ := newTestClient(t, jsonHandler(tt.status, tt.body, tt.header))
				var onDelta func(model.Delta)
				if stream {
					onDelta = func(model.Delta) { t.Error("unexpected delta") }
				}
				resp, err := c.Generate(t.Context(), simpleRequest(), onDelta)
				require.Nil(t, resp)
				me := requireKind(t, err, tt.want)
				require.Equal(t, tt.status, me.StatusCode)
				require.Equal(t, tt.message, me.Message)
				require.Equal(t, tt.retryAfter, me.RetryAfter)
			})
		}
	}
}

func TestInvalidResponseBody(t *testing.T) {
	c, _ := newTestClient(t, jsonHandler(200, `{"content": [`, nil))
	_, err := c.Generate(t.Context(), simpleRequest(), nil)
	requireKind(t, err, model.ErrProtocol)
}

func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens any more
	c := New(Options{BaseURL: srv.URL, APIKey: testKey})
	_, err := c.Generate(t.Context(), simpleRequest(), nil)
	requireKind(t, err, model.ErrNetwork)
	require.True(t, model.Retryable(err))
}

func TestCancelDuringStream(t *testing.T) {
	release := make(chan struct{})
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, messageStart(10)+textStart(0, "")+textDelta(0, "slow"))
		w.(http.Flusher).Flush()
		select { // a stream that stalls
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server closes

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cancelledAt := make(chan time.Time, 1)
	var once sync.Once
	onDelta := func(model.Delta) {
		once.Do(func() {
			go func() {
				time.Sleep(20 * time.Millisecond)
				cancelledAt <- time.Now()
				cancel()
			}()
		})
	}

	resp, err := c.Generate(ctx, simpleRequest(), onDelta)
	returned := time.Now()
	require.Nil(t, resp)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, model.Retryable(err))
	require.Less(t, returned.Sub(<-cancelledAt), 100*time.Millisecond)
}

func TestDeadlineDuringStreamIsTimeout(t *testing.T) {
	release := make(chan struct{})
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, messageStart(10))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Generate(ctx, simpleRequest(), func(model.Delta) {})
	requireKind(t, err, model.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestAPIKeyNeverInErrors(t *testing.T) {
	echo := "bad key " + testKey
	cases := map[string]struct {
		handler http.HandlerFunc
		stream  bool
	}{
		"json error body": {handler: jsonHandler(401, fmt.Sprintf(`{"type":"error","error":{"type":"authentication_error","message":%q}}`, echo), nil)},
		"text error body": {handler: jsonHandler(500, echo, nil)},
		"stream error event": {
			handler: sseHandler(t, []string{messageStart(1), event("error", fmt.Sprintf(`{"type":"error","error":{"type":"authentication_error","message":%q}}`, echo))}),
			stream:  true,
		},
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		for e := err; e != nil; e = errors.Unwrap(e) {
			require.NotContains(t, e.Error(), testKey)
			require.NotContains(t, fmt.Sprintf("%+v", e), testKey)
		}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, _ := newTestClient(t, tc.handler)
			var onDelta func(model.Delta)
			if tc.stream {
				onDelta = func(model.Delta) {}
			}
			_, err := c.Generate(t.Context(), simpleRequest(), onDelta)
			check(t, err)
			require.Contains(t, err.Error(), "[redacted]")
		})
	}
	t.Run("transport error", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		_, err := New(Options{BaseURL: srv.URL, APIKey: testKey}).Generate(t.Context(), simpleRequest(), nil)
		check(t, err)
	})
}

func TestNewDefaults(t *testing.T) {
	c := New(Options{})
	require.Equal(t, "https://api.anthropic.com/v1/messages", c.endpoint)
	require.NotNil(t, c.http)
	require.Zero(t, c.http.Timeout)
	require.Equal(t, "http://proxy.local/anthropic/v1/messages", New(Options{BaseURL: "http://proxy.local/anthropic///"}).endpoint)
}
