// Package openai implements model.Provider for the OpenAI Chat Completions
// wire format: POST {base_url}/chat/completions, answered with one JSON
// document or, when streaming, with server-sent events.
//
// Chat Completions has become the lingua franca of model servers. OpenAI
// itself, Ollama, vLLM, LM Studio, Groq, Together, OpenRouter and many others
// accept the same request and answer in the same shape, so one adapter serves
// them all: only the base URL, the API key (absent for local servers) and
// perhaps a few extra headers differ. The parser is deliberately tolerant of
// the small ways these servers diverge (tool-call ids repeated in every delta,
// "stop" instead of "tool_calls" as the finish reason, a stream that closes
// without [DONE], error objects inside a 200 stream), so the engine sees one
// behaviour whatever is behind the URL.
//
// The adapter makes exactly one HTTP request per Generate call and classifies
// failures as *model.Error. Retries, backoff and fallbacks belong to package
// model, which wraps providers.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/troupehq/troupe/engine/model"
)

// Base URLs of well-known servers.
const (
	DefaultBaseURL = "https://api.openai.com/v1"
	OllamaBaseURL  = "http://localhost:11434/v1"
)

const (
	// maxResponseBytes bounds a non-streamed response body and any single
	// streamed event, so a misbehaving server cannot exhaust memory.
	maxResponseBytes = 32 << 20
	// maxErrorBodyBytes bounds how much of a non-2xx body is read.
	maxErrorBodyBytes = 64 << 10
	// maxSnippetChars bounds the raw body quoted in an error message when the
	// server did not send an OpenAI error object.
	maxSnippetChars = 300
)

// Options configure a Client.
type Options struct {
	Name       string            // provider name used in errors ("openai", "ollama"); default "openai"
	BaseURL    string            // default DefaultBaseURL; trailing slash tolerated
	APIKey     string            // sent as "Authorization: Bearer"; empty sends no header (Ollama)
	Headers    map[string]string // extra headers
	HTTPClient *http.Client      // default: a client with no overall timeout (streams can be long; ctx bounds each call)
}

// Client calls one OpenAI-compatible server. It holds no per-request state and
// is safe for concurrent use.
type Client struct {
	name    string
	url     string // full chat completions endpoint
	apiKey  string
	headers map[string]string
	http    *http.Client
	// secrets are redacted from every error message: the API key and the
	// values of extra headers that look like credentials.
	secrets []string
}

var _ model.Provider = (*Client)(nil)

// New returns a Client for opts, filling in defaults.
func New(opts Options) *Client {
	c := &Client{
		name:    opts.Name,
		apiKey:  opts.APIKey,
		headers: make(map[string]string, len(opts.Headers)),
		http:    opts.HTTPClient,
	}
	if c.name == "" {
		c.name = "openai"
	}
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	c.url = strings.TrimRight(base, "/") + "/chat/completions"
	if c.http == nil {
		c.http = model.HTTPClient()
	}
	if c.apiKey != "" {
		c.secrets = append(c.secrets, c.apiKey)
	}
	for k, v := range opts.Headers {
		c.headers[k] = v
		if v != "" && looksSecret(k) {
			c.secrets = append(c.secrets, v)
		}
	}
	return c
}

// looksSecret reports whether a header name suggests a credential, such as
// Azure's api-key or a proxy's X-Auth-Token.
func looksSecret(header string) bool {
	h := strings.ToLower(header)
	return strings.Contains(h, "key") || strings.Contains(h, "auth") ||
		strings.Contains(h, "token") || strings.Contains(h, "secret")
}

// redact removes the client's secrets from a message meant for users; servers
// sometimes echo the credential they rejected.
func (c *Client) redact(s string) string {
	for _, secret := range c.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

// Generate sends req and returns the complete answer. With onDelta it streams
// and calls onDelta for each piece of content, in order, on this goroutine.
func (c *Client) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	if req == nil {
		return nil, &model.Error{Kind: model.ErrBadRequest, Provider: c.name, Message: "nil request"}
	}
	stream := onDelta != nil
	body, err := json.Marshal(buildRequest(req, stream))
	if err != nil {
		return nil, &model.Error{Kind: model.ErrBadRequest, Provider: c.name, Message: "encoding request: " + c.redact(err.Error()), Err: err}
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, &model.Error{Kind: model.ErrBadRequest, Provider: c.name, Message: "invalid base URL", Err: err}
	}
	httpReq.Header.Set("Content-Type", "application/json")
	if stream {
		httpReq.Header.Set("Accept", "text/event-stream")
	} else {
		httpReq.Header.Set("Accept", "application/json")
	}
	if c.apiKey != "" {
		httpReq.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	for k, v := range c.headers {
		httpReq.Header.Set(k, v)
	}

	resp, err := c.http.Do(httpReq)
	if err != nil {
		return nil, model.TransportError(ctx, c.name, err)
	}
	defer resp.Body.Close()
	// The transport normally aborts reads when ctx ends; closing the body as
	// well guarantees a prompt return with any RoundTripper.
	stop := context.AfterFunc(ctx, func() { resp.Body.Close() })
	defer stop()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.httpError(ctx, resp)
	}
	// Some servers ignore "stream": true and answer with a plain document.
	if !stream || isJSON(resp.Header.Get("Content-Type")) {
		return c.readResponse(ctx, resp.Body, onDelta)
	}
	return c.readStream(ctx, resp.Body, onDelta)
}

// isJSON reports whether a Content-Type is application/json.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// readResponse decodes a non-streamed answer. When onDelta is set (a server
// that ignored "stream") the whole content is delivered as one delta.
func (c *Client) readResponse(ctx context.Context, body io.Reader, onDelta func(model.Delta)) (*model.Response, error) {
	data, err := io.ReadAll(io.LimitReader(body, maxResponseBytes+1))
	if err != nil {
		return nil, model.TransportError(ctx, c.name, err)
	}
	if len(data) > maxResponseBytes {
		return nil, c.protocolError(fmt.Sprintf("response body exceeds %d bytes", maxResponseBytes), nil)
	}
	var cr chatResponse
	if err := json.Unmarshal(data, &cr); err != nil {
		return nil, c.protocolError("invalid JSON response", err)
	}
	if cr.Error != nil {
		return nil, cr.Error.ModelError(c.name, c.redact)
	}
	choice := cr.choice()
	if choice == nil || choice.Message == nil {
		return nil, c.protocolError("response has no choices", nil)
	}
	msg := choice.Message
	content := msg.Content
	if content == "" {
		content = msg.Refusal
	}
	calls := make([]model.ToolCall, 0, len(msg.ToolCalls))
	for i, tc := range msg.ToolCalls {
		calls = append(calls, toolCall(i, tc.ID, tc.Function.Name, string(tc.Function.Arguments)))
	}
	if len(calls) == 0 {
		calls = nil
	}
	resp := &model.Response{
		Content:    content,
		ToolCalls:  calls,
		StopReason: stopReason(choice.FinishReason, len(calls) > 0),
		Model:      cr.Model,
		Reasoning:  msg.reasoning(),
	}
	if cr.Usage != nil {
		resp.Usage = cr.Usage.model()
	}
	if onDelta != nil && resp.Reasoning != "" {
		onDelta(model.Delta{Reasoning: resp.Reasoning})
	}
	if onDelta != nil && content != "" {
		onDelta(model.Delta{Content: content})
	}
	return resp, nil
}

// toolCall normalizes a tool call: empty arguments become "{}" and a missing
// id (some local servers omit it) is made up from the call's position, so
// tool results can still refer to it.
func toolCall(index int, id, name, args string) model.ToolCall {
	// Invalid arguments pass through unchanged: the agent loop reports them
	// back to the model, which can correct itself.
	args, _ = model.ValidArguments(args)
	if id == "" {
		id = "call_" + strconv.Itoa(index)
	}
	return model.ToolCall{ID: id, Name: name, Arguments: args}
}

// stopReason maps an OpenAI finish_reason to the model package's stop
// reasons. Several servers (Ollama among them) report "stop" for an answer
// that calls tools, so tool calls win over anything but "length", which
// means the calls may be truncated.
func stopReason(finish string, hasToolCalls bool) string {
	switch finish {
	case "length":
		return model.StopLength
	case "tool_calls", "function_call":
		return model.StopToolCalls
	}
	if hasToolCalls {
		return model.StopToolCalls
	}
	return model.StopEnd
}

// httpError classifies a non-2xx response, quoting the server's message.
func (c *Client) httpError(ctx context.Context, resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	if err != nil && ctx.Err() != nil {
		return model.TransportError(ctx, c.name, err)
	}
	return ResponseError(c.name, resp, body, c.redact)
}

// ResponseError classifies a non-2xx response of an OpenAI-wire server from
// its status and body (read by the caller, bounded), quoting the server's
// message through redact. It serves every OpenAI-wire client (chat here,
// embeddings in engine/knowledge/embed).
func ResponseError(provider string, resp *http.Response, body []byte, redact func(string) string) *model.Error {
	msg, code := ErrorMessage(body)
	e := model.HTTPError(provider, resp, redact(msg))
	if e.Kind == model.ErrBadRequest && code == "context_length_exceeded" {
		e.Kind = model.ErrContextLength
	}
	return e
}

// ErrorMessage extracts the message (and code, if any) from an error body:
// OpenAI's {"error": {"message": ...}}, the {"error": "..."} some servers
// send, vLLM's top-level {"message": ...} or FastAPI's {"detail": "..."}.
// Anything else is quoted as a trimmed snippet.
func ErrorMessage(body []byte) (msg, code string) {
	var env struct {
		Error   *APIError `json:"error"`
		Message string    `json:"message"`
		Detail  any       `json:"detail"`
	}
	if json.Unmarshal(body, &env) == nil {
		if env.Error != nil && env.Error.Message != "" {
			return env.Error.Message, env.Error.Code
		}
		if env.Message != "" {
			return env.Message, ""
		}
		if d, ok := env.Detail.(string); ok && d != "" {
			return d, ""
		}
	}
	return snippet(body), ""
}

// snippet returns body trimmed and cut to maxSnippetChars runes.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if r := []rune(s); len(r) > maxSnippetChars {
		s = string(r[:maxSnippetChars]) + "…"
	}
	return s
}

// ModelError is the error an error object found in a 200 response or stream
// stands for, its message passed through redact.
func (ae *APIError) ModelError(provider string, redact func(string) string) *model.Error {
	msg := redact(ae.Message)
	if msg == "" {
		msg = "error reported in response"
	}
	return &model.Error{Kind: ae.Kind(), Provider: provider, Message: msg}
}

// Kind classifies an error object found in a 200 response or stream.
// Servers put the HTTP-like condition in type or code, which may be a
// string ("rate_limit_exceeded") or a number (OpenRouter's 429, 502).
func (ae *APIError) Kind() model.ErrorKind {
	tc := strings.ToLower(ae.Type + " " + ae.Code)
	status, _ := strconv.Atoi(ae.Code)
	switch {
	case status == http.StatusTooManyRequests ||
		strings.Contains(tc, "rate_limit") || strings.Contains(tc, "ratelimit") ||
		strings.Contains(tc, "rate-limit") || strings.Contains(tc, "too_many_requests"):
		return model.ErrRateLimit
	case status >= 500 ||
		strings.Contains(tc, "server_error") || strings.Contains(tc, "overloaded") ||
		strings.Contains(tc, "unavailable"):
		return model.ErrOverloaded
	}
	return model.ErrProtocol
}

// protocolError reports an answer the adapter cannot understand.
func (c *Client) protocolError(msg string, err error) *model.Error {
	if err != nil {
		msg += ": " + c.redact(err.Error())
	}
	return &model.Error{Kind: model.ErrProtocol, Provider: c.name, Message: msg, Err: err}
}
