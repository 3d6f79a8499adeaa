package openai

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/troupehq/troupe/engine/model"
)

// This file holds the Chat Completions JSON shapes and the conversion from
// model.Request. Only the fields the adapter uses are declared.

// chatRequest is the body of POST /chat/completions.
type chatRequest struct {
	Model          string          `json:"model"`
	Messages       []chatMessage   `json:"messages"`
	Tools          []chatTool      `json:"tools,omitempty"`
	Temperature    *float64        `json:"temperature,omitempty"`
	MaxTokens      int             `json:"max_tokens,omitempty"`
	ResponseFormat *responseFormat `json:"response_format,omitempty"`
	Stream         bool            `json:"stream,omitempty"`
	StreamOptions  *streamOptions  `json:"stream_options,omitempty"`
}

// chatMessage is one request message. Content is a pointer because an
// assistant message that only calls tools carries "content": null.
type chatMessage struct {
	Role    string  `json:"role"`
	Content *string `json:"content"`
	// Parts replace Content for a user message with images: a text part
	// and one image_url part per image.
	Parts      []contentPart `json:"-"`
	ToolCalls  []reqToolCall `json:"tool_calls,omitempty"`
	ToolCallID string        `json:"tool_call_id,omitempty"`
}

// MarshalJSON writes Parts as the message's content when it has them.
func (m chatMessage) MarshalJSON() ([]byte, error) {
	type plain chatMessage
	if len(m.Parts) == 0 {
		return json.Marshal(plain(m))
	}
	return json.Marshal(struct {
		plain
		Content []contentPart `json:"content"`
	}{plain(m), m.Parts})
}

// contentPart is one part of a multi-part user message.
type contentPart struct {
	Type     string    `json:"type"` // text or image_url
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
}

type imageURL struct {
	URL string `json:"url"` // a data: URL
}

// reqToolCall is a tool call replayed in an assistant message.
type reqToolCall struct {
	ID       string      `json:"id"`
	Type     string      `json:"type"` // always "function"
	Function reqFunction `json:"function"`
}

type reqFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // a JSON object encoded as a string
}

type chatTool struct {
	Type     string       `json:"type"` // always "function"
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Parameters  map[string]any `json:"parameters"`
}

type responseFormat struct {
	Type       string     `json:"type"` // "json_schema"
	JSONSchema jsonSchema `json:"json_schema"`
}

type jsonSchema struct {
	Name   string         `json:"name"`
	Schema map[string]any `json:"schema"`
	// Strict is false: strict mode rejects many ordinary schemas (optional
	// properties, open objects), and the agent loop validates answers anyway.
	Strict bool `json:"strict"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// buildRequest converts a model.Request to the wire request.
func buildRequest(req *model.Request, stream bool) *chatRequest {
	cr := &chatRequest{
		Model:       req.Model,
		Messages:    make([]chatMessage, 0, len(req.Messages)+1),
		Temperature: req.Temperature,
	}
	if req.MaxTokens > 0 {
		// max_tokens rather than OpenAI's newer max_completion_tokens: every
		// compatible server accepts it.
		cr.MaxTokens = req.MaxTokens
	}
	if req.System != "" {
		cr.Messages = append(cr.Messages, chatMessage{Role: "system", Content: ptr(req.System)})
	}
	for _, m := range req.Messages {
		cr.Messages = append(cr.Messages, buildMessage(m))
	}
	for _, t := range req.Tools {
		params := t.Parameters
		if params == nil {
			// "parameters": null is rejected; a no-argument tool takes an
			// empty object.
			params = map[string]any{"type": "object", "properties": map[string]any{}}
		}
		cr.Tools = append(cr.Tools, chatTool{
			Type:     "function",
			Function: toolFunction{Name: t.Name, Description: t.Description, Parameters: params},
		})
	}
	if req.OutputSchema != nil {
		name := req.OutputSchemaName
		if name == "" {
			name = "output"
		}
		cr.ResponseFormat = &responseFormat{
			Type:       "json_schema",
			JSONSchema: jsonSchema{Name: name, Schema: req.OutputSchema},
		}
	}
	if stream {
		cr.Stream = true
		cr.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	return cr
}

// buildMessage converts one conversation message.
func buildMessage(m model.Message) chatMessage {
	cm := chatMessage{Role: string(m.Role), Content: ptr(m.Content)}
	switch m.Role {
	case model.RoleAssistant:
		for _, tc := range m.ToolCalls {
			args, _ := model.ValidArguments(tc.Arguments)
			cm.ToolCalls = append(cm.ToolCalls, reqToolCall{
				ID:       tc.ID,
				Type:     "function",
				Function: reqFunction{Name: tc.Name, Arguments: args},
			})
		}
		if m.Content == "" && len(cm.ToolCalls) > 0 {
			cm.Content = nil
		}
	case model.RoleUser:
		if len(m.Images) > 0 {
			if m.Content != "" {
				cm.Parts = append(cm.Parts, contentPart{Type: "text", Text: m.Content})
			}
			for _, img := range m.Images {
				cm.Parts = append(cm.Parts, contentPart{Type: "image_url", ImageURL: &imageURL{URL: img.DataURL()}})
			}
		}
	case model.RoleTool:
		// The wire format has no error flag for tool results: the content
		// itself must say what went wrong.
		cm.ToolCallID = m.ToolCallID
	}
	return cm
}

func ptr[T any](v T) *T { return &v }

// chatResponse is a complete answer, or one streamed chunk: the two share a
// shape, with choices[].message in the first and choices[].delta in the other.
type chatResponse struct {
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *chatUsage   `json:"usage"`
	Error   *APIError    `json:"error"`
}

// choice returns the first choice (index 0), or nil if there is none.
func (r *chatResponse) choice() *chatChoice {
	for i := range r.Choices {
		if r.Choices[i].Index == 0 {
			return &r.Choices[i]
		}
	}
	return nil
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *respMessage `json:"message"`
	Delta        *respMessage `json:"delta"`
	FinishReason string       `json:"finish_reason"` // null decodes as ""
}

type respMessage struct {
	Content   string         `json:"content"`
	Refusal   string         `json:"refusal"`
	ToolCalls []respToolCall `json:"tool_calls"`
	// ReasoningContent is the native reasoning DeepSeek, vLLM and other
	// OpenAI-wire servers of reasoning models add beside the content
	// (some name it reasoning).
	ReasoningContent string `json:"reasoning_content"`
	Reasoning        string `json:"reasoning"`
}

// respToolCall is a tool call in an answer, or a fragment of one in a
// streamed delta, where Index says which call it continues.
type respToolCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string   `json:"name"`
		Arguments argsText `json:"arguments"`
	} `json:"function"`
}

// argsText is a tool call's arguments. The format sends them as a string
// holding JSON, but a few servers send the object itself; both are accepted.
type argsText string

func (a *argsText) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(b, []byte(`"`)) {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = argsText(s)
		return nil
	}
	if string(b) == "null" {
		*a = ""
		return nil
	}
	*a = argsText(b)
	return nil
}

type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

func (u *chatUsage) model() model.Usage {
	return model.Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens}
}

// APIError is an error object of the OpenAI wire format, in an error
// response or in place of a result. It accepts OpenAI's {"message", "type",
// "code"} with a string or numeric code, and the bare string some servers
// send as "error". Other clients of OpenAI-wire APIs (embeddings) use it too.
type APIError struct {
	Message string
	Type    string
	Code    string
}

func (e *APIError) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		e.Message = s
		return nil
	}
	var o struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		// An unexpected shape is still an error: quote it rather than
		// failing to parse the whole document.
		e.Message = snippet(b)
		return nil
	}
	e.Message, e.Type = o.Message, o.Type
	if err := json.Unmarshal(o.Code, &e.Code); err != nil {
		e.Code = strings.Trim(string(o.Code), " ")
		if e.Code == "null" {
			e.Code = ""
		}
	}
	return nil
}

// reasoning returns a message's or delta's native reasoning text.
func (m *respMessage) reasoning() string {
	if m.ReasoningContent != "" {
		return m.ReasoningContent
	}
	return m.Reasoning
}
