// Package anthropic implements model.Provider for the Anthropic Messages API
// (POST {base_url}/v1/messages), both as a single JSON response and as a
// server-sent-event stream.
//
// The adapter translates model.Request into the Messages wire format: system
// instructions travel in the top-level "system" field, tool results become
// tool_result blocks inside user messages, and consecutive messages of the same
// role are merged because the API requires user and assistant turns to
// alternate. The Messages API has no response_format, so a requested output
// schema is sent as an instruction appended to the system prompt.
//
// Each Generate call makes exactly one HTTP request. Failures are classified as
// *model.Error (or returned as ctx's error on cancellation); retries, backoff
// and fallbacks are the job of the wrapper in package model.
package anthropic

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/troupehq/troupe/engine/model"
)

// DefaultBaseURL is the Anthropic API endpoint used when Options.BaseURL is empty.
const DefaultBaseURL = "https://api.anthropic.com"

// APIVersion is the value of the anthropic-version header.
const APIVersion = "2023-06-01"

// DefaultMaxTokens is sent when Request.MaxTokens is 0: the Messages API
// requires max_tokens on every request.
const DefaultMaxTokens = 4096

// providerName labels errors.
const providerName = "anthropic"

// Size limits for response bodies.
const (
	maxBodyBytes      = 32 << 20 // a complete non-streaming response
	maxErrorBodyBytes = 64 << 10 // the body of a non-2xx response
	maxSnippetRunes   = 300      // error message taken from a non-JSON error body
)

// Options configures a Client.
type Options struct {
	// BaseURL is the API root, without /v1; DefaultBaseURL when empty. A
	// trailing slash is tolerated.
	BaseURL string
	// APIKey is sent as the x-api-key header. It never appears in errors.
	APIKey string
	// Headers are extra request headers, such as anthropic-beta. They may
	// override anthropic-version but not content-type or x-api-key.
	Headers map[string]string
	// HTTPClient sends requests. The default has no overall timeout: the
	// context passed to Generate bounds each call, including long streams.
	HTTPClient *http.Client
}

// Client is a model.Provider for the Anthropic Messages API. It holds only
// immutable configuration and is safe for concurrent use.
type Client struct {
	endpoint string
	apiKey   string
	headers  map[string]string
	http     *http.Client
}

var _ model.Provider = (*Client)(nil)

// New returns a Client configured by opts.
func New(opts Options) *Client {
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = model.HTTPClient()
	}
	headers := make(map[string]string, len(opts.Headers))
	for k, v := range opts.Headers {
		headers[k] = v
	}
	return &Client{
		endpoint: strings.TrimRight(base, "/") + "/v1/messages",
		apiKey:   opts.APIKey,
		headers:  headers,
		http:     hc,
	}
}

// Generate sends req to the Messages API. When onDelta is not nil the call
// streams and onDelta receives each text delta, in order, from the calling
// goroutine.
func (c *Client) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	if req == nil {
		return nil, &model.Error{Kind: model.ErrBadRequest, Provider: providerName, Message: "nil request"}
	}
	stream := onDelta != nil
	body, err := buildRequest(req, stream)
	if err != nil {
		return nil, err
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, &model.Error{Kind: model.ErrBadRequest, Provider: providerName, Message: "invalid base URL", Err: err}
	}
	c.setHeaders(httpReq.Header, stream)

	resp, err := c.http.Do(httpReq)
	if err != nil {
		return nil, model.TransportError(ctx, providerName, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.httpError(resp)
	}
	if !stream {
		return c.readResponse(ctx, resp.Body)
	}
	// The transport already aborts the body when ctx ends; closing it here as
	// well guarantees a prompt return whatever RoundTripper is in use.
	stop := context.AfterFunc(ctx, func() { resp.Body.Close() })
	defer stop()
	return c.readStream(ctx, resp.Body, onDelta)
}

// setHeaders writes the request headers: the caller's extra headers first, then
// the ones the API requires.
func (c *Client) setHeaders(h http.Header, stream bool) {
	for k, v := range c.headers {
		h.Set(k, v)
	}
	if h.Get("anthropic-version") == "" {
		h.Set("anthropic-version", APIVersion)
	}
	h.Set("content-type", "application/json")
	if c.apiKey != "" {
		h.Set("x-api-key", c.apiKey)
	}
	if stream {
		h.Set("accept", "text/event-stream")
	} else {
		h.Set("accept", "application/json")
	}
}

// Wire types of the request.

type wireRequest struct {
	Model       string        `json:"model"`
	MaxTokens   int           `json:"max_tokens"`
	System      string        `json:"system,omitempty"`
	Messages    []wireMessage `json:"messages"`
	Tools       []wireTool    `json:"tools,omitempty"`
	Temperature *float64      `json:"temperature,omitempty"`
	Stream      bool          `json:"stream,omitempty"`
	Thinking    *wireThinking `json:"thinking,omitempty"`
}

// wireThinking turns on extended thinking.
type wireThinking struct {
	Type         string `json:"type"` // enabled
	BudgetTokens int    `json:"budget_tokens"`
}

// minThinkingBudget is the smallest budget_tokens the API accepts.
const minThinkingBudget = 1024

type wireMessage struct {
	Role    string      `json:"role"`
	Content []wireBlock `json:"content"`
}

// wireBlock is a request content block: text, tool_use or tool_result.
type wireBlock struct {
	Type string `json:"type"`
	// text
	Text string `json:"text,omitempty"`
	// tool_use
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
	// thinking
	Thinking  string `json:"thinking,omitempty"`
	Signature string `json:"signature,omitempty"`
	// tool_result
	ToolUseID string `json:"tool_use_id,omitempty"`
	Content   string `json:"content,omitempty"`
	IsError   bool   `json:"is_error,omitempty"`
	// image
	Source *imageSource `json:"source,omitempty"`
}

// imageSource is an image block's inline image.
type imageSource struct {
	Type      string `json:"type"` // always base64
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
}

type wireTool struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	InputSchema map[string]any `json:"input_schema"`
}

// buildRequest encodes req as a Messages API request body.
func buildRequest(req *model.Request, stream bool) ([]byte, error) {
	system, err := systemPrompt(req)
	if err != nil {
		return nil, err
	}
	w := wireRequest{
		Model:       req.Model,
		MaxTokens:   req.MaxTokens,
		System:      system,
		Messages:    convertMessages(req.Messages),
		Temperature: req.Temperature,
		Stream:      stream,
	}
	if w.MaxTokens <= 0 {
		w.MaxTokens = DefaultMaxTokens
	}
	if b := req.ReasoningBudget; b > 0 {
		b = max(b, minThinkingBudget)
		w.Thinking = &wireThinking{Type: "enabled", BudgetTokens: b}
		// The thinking budget counts against max_tokens, which must exceed
		// it, and the API refuses a temperature other than 1 with thinking.
		if w.MaxTokens <= b {
			w.MaxTokens = b + DefaultMaxTokens
		}
		w.Temperature = nil
	}
	for _, t := range req.Tools {
		schema := t.Parameters
		if schema == nil {
			// input_schema is required; a tool without parameters takes an
			// empty object.
			schema = map[string]any{"type": "object", "properties": map[string]any{}}
		}
		w.Tools = append(w.Tools, wireTool{Name: t.Name, Description: t.Description, InputSchema: schema})
	}
	body, err := marshal(w)
	if err != nil {
		return nil, &model.Error{Kind: model.ErrBadRequest, Provider: providerName, Message: "cannot encode request", Err: err}
	}
	return body, nil
}

// systemPrompt returns the system field: req.System, followed by the output
// schema instruction when req.OutputSchema is set.
func systemPrompt(req *model.Request) (string, error) {
	if req.OutputSchema == nil {
		return req.System, nil
	}
	schema, err := marshal(req.OutputSchema)
	if err != nil {
		return "", &model.Error{Kind: model.ErrBadRequest, Provider: providerName, Message: "cannot encode output schema", Err: err}
	}
	var b strings.Builder
	if req.System != "" {
		b.WriteString(req.System)
		b.WriteString("\n\n")
	}
	b.WriteString("Answer with only a JSON object that matches the following JSON Schema")
	if req.OutputSchemaName != "" {
		fmt.Fprintf(&b, " (named %q)", req.OutputSchemaName)
	}
	b.WriteString(". Do not wrap it in a Markdown code block and write no text before or after it.\n\n")
	b.Write(schema)
	return b.String(), nil
}

// convertMessages maps the conversation to Messages API turns. Tool results
// become tool_result blocks of user turns, and consecutive turns of one role are
// merged into a single message so that roles alternate as the API requires.
// Turns that would have no content blocks are dropped.
func convertMessages(msgs []model.Message) []wireMessage {
	var out []wireMessage
	for _, m := range msgs {
		var role string
		var blocks []wireBlock
		switch m.Role {
		case model.RoleAssistant:
			role = "assistant"
			// A signed thinking block goes back first: the API requires it
			// on the turn that asked for tools while thinking was on.
			if m.ReasoningSignature != "" {
				blocks = append(blocks, wireBlock{Type: "thinking", Thinking: m.Reasoning, Signature: m.ReasoningSignature})
			}
			if m.Content != "" {
				blocks = append(blocks, wireBlock{Type: "text", Text: m.Content})
			}
			for _, tc := range m.ToolCalls {
				blocks = append(blocks, wireBlock{Type: "tool_use", ID: tc.ID, Name: tc.Name, Input: toolInput(tc.Arguments)})
			}
		case model.RoleTool:
			role = "user"
			blocks = append(blocks, wireBlock{Type: "tool_result", ToolUseID: m.ToolCallID, Content: m.Content, IsError: m.IsError})
		default: // model.RoleUser
			role = "user"
			// Images go before the text, as Anthropic recommends.
			for _, img := range m.Images {
				blocks = append(blocks, wireBlock{Type: "image", Source: &imageSource{Type: "base64",
					MediaType: img.MediaType, Data: base64.StdEncoding.EncodeToString(img.Data)}})
			}
			if m.Content != "" {
				blocks = append(blocks, wireBlock{Type: "text", Text: m.Content})
			}
		}
		if len(blocks) == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Role == role {
			out[n-1].Content = append(out[n-1].Content, blocks...)
			continue
		}
		out = append(out, wireMessage{Role: role, Content: blocks})
	}
	return out
}

// toolInput returns a tool call's arguments as the JSON object the API expects
// in a tool_use block. Arguments that are empty or not a JSON object (a model
// can write broken JSON, for instance when cut off by max_tokens) are sent as
// {} so that the conversation stays valid; the tool result already told the
// model what went wrong.
func toolInput(args string) json.RawMessage {
	args, ok := model.ValidArguments(args)
	if !ok {
		return json.RawMessage("{}")
	}
	return compact([]byte(args))
}

// marshal encodes v as JSON without escaping <, > and &, which are common in
// prompts and schemas.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// compact returns raw JSON without insignificant whitespace, or raw unchanged
// when it is not valid JSON.
func compact(raw []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return json.RawMessage(raw)
	}
	return json.RawMessage(buf.Bytes())
}

// Wire types of the response.

type wireUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// wireContent is a response content block.
type wireContent struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Thinking  string          `json:"thinking"`
	Signature string          `json:"signature"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type wireResponse struct {
	Model      string        `json:"model"`
	Content    []wireContent `json:"content"`
	StopReason string        `json:"stop_reason"`
	Usage      wireUsage     `json:"usage"`
}

// wireError is the body of an error response and the data of an error event.
type wireError struct {
	Type  string `json:"type"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// readResponse decodes a non-streaming response body.
func (c *Client) readResponse(ctx context.Context, body io.Reader) (*model.Response, error) {
	data, err := io.ReadAll(io.LimitReader(body, maxBodyBytes+1))
	if err != nil {
		return nil, model.TransportError(ctx, providerName, err)
	}
	if len(data) > maxBodyBytes {
		return nil, protocolError(fmt.Sprintf("response body exceeds %d MiB", maxBodyBytes>>20), nil)
	}
	var w wireResponse
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, protocolError("invalid response body", err)
	}
	resp := &model.Response{
		Model: w.Model,
		Usage: model.Usage{InputTokens: w.Usage.InputTokens, OutputTokens: w.Usage.OutputTokens},
	}
	var text, thinking strings.Builder
	for _, b := range w.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "thinking":
			thinking.WriteString(b.Thinking)
			resp.ReasoningSignature = b.Signature
		case "tool_use":
			resp.ToolCalls = append(resp.ToolCalls, model.ToolCall{ID: b.ID, Name: b.Name, Arguments: inputArguments(b.Input)})
		}
		// Other blocks (redacted_thinking, server tool blocks) carry
		// nothing the engine uses.
	}
	resp.Content = text.String()
	resp.Reasoning = thinking.String()
	resp.StopReason = stopReason(w.StopReason, len(resp.ToolCalls) > 0)
	return resp, nil
}

// inputArguments returns a tool_use block's input as ToolCall.Arguments: the
// compact JSON object, or "{}" when absent.
func inputArguments(input json.RawMessage) string {
	input = bytes.TrimSpace(input)
	if len(input) == 0 || bytes.Equal(input, []byte("null")) {
		return "{}"
	}
	return string(compact(input))
}

// stopReason normalizes an Anthropic stop_reason.
func stopReason(reason string, hasToolCalls bool) string {
	switch reason {
	case "end_turn", "stop_sequence":
		return model.StopEnd
	case "tool_use":
		return model.StopToolCalls
	case "max_tokens", "model_context_window_exceeded":
		return model.StopLength
	}
	// Absent or unknown (refusal, pause_turn, ...): judge by the content.
	if hasToolCalls {
		return model.StopToolCalls
	}
	return model.StopEnd
}

// httpError classifies a non-2xx response, taking the message from the
// Anthropic error body or, failing that, from a snippet of the body.
func (c *Client) httpError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	return model.HTTPError(providerName, resp, c.redact(errorMessage(data)))
}

// errorMessage extracts error.message from an error body, or returns the
// trimmed body cut to maxSnippetRunes.
func errorMessage(data []byte) string {
	var w wireError
	if json.Unmarshal(data, &w) == nil && w.Error != nil && w.Error.Message != "" {
		return w.Error.Message
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(data), "\uFFFD"))
	if utf8.RuneCountInString(s) > maxSnippetRunes {
		s = string([]rune(s)[:maxSnippetRunes]) + "…"
	}
	return s
}

// redact removes the API key from a message that will end up in an error, in
// case a server or proxy echoes request headers back.
func (c *Client) redact(s string) string {
	if c.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, c.apiKey, "[redacted]")
}

// protocolError reports a response the adapter cannot understand.
func protocolError(msg string, err error) *model.Error {
	return &model.Error{Kind: model.ErrProtocol, Provider: providerName, Message: msg, Err: err}
}

// streamError classifies the error object of a streamed error event.
func (c *Client) streamError(typ, message string) *model.Error {
	e := &model.Error{Provider: providerName, Message: c.redact(message)}
	switch typ {
	case "overloaded_error", "api_error":
		e.Kind = model.ErrOverloaded
	case "rate_limit_error":
		e.Kind = model.ErrRateLimit
	case "authentication_error", "permission_error":
		e.Kind = model.ErrAuth
	case "timeout_error":
		e.Kind = model.ErrTimeout
	case "invalid_request_error", "not_found_error", "request_too_large":
		if model.IsContextLengthMessage(strings.ToLower(message)) {
			e.Kind = model.ErrContextLength
		} else {
			e.Kind = model.ErrBadRequest
		}
	default:
		e.Kind = model.ErrProtocol
	}
	if e.Message == "" {
		e.Message = typ
	}
	return e
}

// errStreamEnded is the cause of an early end of stream.
var errStreamEnded = errors.New("stream ended before message_stop")
