// Package model is the interface between the engine and language-model vendors:
// the request and response types every adapter speaks, error classification,
// retries with backoff, fallbacks, and the registry that builds providers from
// model configurations.
//
// Each vendor lives in its own package (openai, anthropic, echo) and implements
// Provider; nothing outside this tree knows a vendor's wire format.
package model

import (
	"context"
	"encoding/base64"
	"encoding/json"
)

// Role is the author of a message.
type Role string

// Message roles.
const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Message is one turn of a conversation. System instructions are not messages:
// they travel in Request.System because vendors place them differently.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content,omitempty"`
	// ToolCalls are the calls an assistant message requested.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID, Name and IsError describe a tool result (Role tool).
	ToolCallID string `json:"tool_call_id,omitempty"`
	Name       string `json:"name,omitempty"`
	IsError    bool   `json:"is_error,omitempty"`
	// Reasoning is an assistant message's native reasoning (Anthropic
	// thinking, reasoning_content), and ReasoningSignature the vendor's
	// signature over it: Anthropic requires a thinking turn's signed block
	// back with its tool calls, so it travels with the conversation.
	Reasoning          string `json:"reasoning,omitempty"`
	ReasoningSignature string `json:"reasoning_signature,omitempty"`
	// Images travel with a user message to a vision model, each in its
	// vendor's wire shape (OpenAI image_url parts, Anthropic image
	// blocks). They are not stored with the run's messages, so a later
	// turn's history replays the message's text and not its images.
	Images []Image `json:"-"`
}

// Image is an image a user sent with a message: its bytes and media type
// (image/png, image/jpeg, image/gif or image/webp).
type Image struct {
	MediaType string
	Data      []byte
}

// DataURL returns the image as a data: URL, the OpenAI wire's inline form.
func (i Image) DataURL() string {
	return "data:" + i.MediaType + ";base64," + base64.StdEncoding.EncodeToString(i.Data)
}

// ToolCall is a model's request to call a tool.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // a JSON object, as the model wrote it
}

// ToolDef describes a tool to the model.
type ToolDef struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Parameters  map[string]any `json:"parameters"` // JSON Schema, type object
}

// Request is one model call.
type Request struct {
	Model       string    // the vendor's model id
	System      string    // system instructions
	Messages    []Message // the conversation, oldest first
	Tools       []ToolDef
	Temperature *float64
	MaxTokens   int // 0 means the provider's default
	// OutputSchema, when set, asks for a JSON answer matching this JSON Schema
	// (type object). Providers that cannot enforce it still receive it as an
	// instruction; the agent loop validates the answer either way.
	OutputSchema     map[string]any
	OutputSchemaName string
	// ReasoningBudget, when positive, asks a provider with native reasoning
	// (Anthropic extended thinking) to think with up to this many tokens
	// before answering. Providers without such a switch ignore it; servers
	// that always reason (DeepSeek R1) report their reasoning regardless.
	ReasoningBudget int
}

// Usage counts tokens.
type Usage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// Add accumulates u2 into u.
func (u *Usage) Add(u2 Usage) {
	u.InputTokens += u2.InputTokens
	u.OutputTokens += u2.OutputTokens
}

// Stop reasons, normalized across vendors.
const (
	StopEnd       = "stop"       // the model finished its answer
	StopToolCalls = "tool_calls" // the model wants tool results
	StopLength    = "length"     // max_tokens reached
)

// Response is a model's complete answer to a Request.
type Response struct {
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	Usage      Usage      `json:"usage"`
	StopReason string     `json:"stop_reason"`
	Model      string     `json:"model"` // as reported by the vendor
	// Cost is what the answer cost at its target's price; CostKnown is false
	// when the model's price is unknown (Cost is then 0). Set by Chain.
	Cost      Cost `json:"cost,omitempty"`
	CostKnown bool `json:"cost_known,omitempty"`
	// Reasoning is the model's native reasoning, when the vendor reports it
	// (Anthropic thinking blocks, reasoning_content on the OpenAI wire), and
	// ReasoningSignature the vendor's signature over it (Anthropic).
	Reasoning          string `json:"reasoning,omitempty"`
	ReasoningSignature string `json:"reasoning_signature,omitempty"`
}

// Delta is an incremental piece of a streamed answer: answer text in Content,
// or native reasoning text in Reasoning (one of them is set).
type Delta struct {
	Content   string
	Reasoning string
}

// Provider calls one vendor API. Implementations are safe for concurrent use and
// hold no per-request state; the engine shares one per distinct configuration.
type Provider interface {
	// Generate returns the complete answer. When onDelta is not nil the call
	// streams and onDelta receives each content delta, in order, from the
	// calling goroutine, before Generate returns the assembled Response.
	// Generate returns promptly with ctx's error when ctx is cancelled.
	Generate(ctx context.Context, req *Request, onDelta func(Delta)) (*Response, error)
}

// ValidArguments reports whether a tool call's arguments are a JSON object, and
// returns "{}" for empty arguments, which some vendors send for no-argument calls.
func ValidArguments(args string) (string, bool) {
	if args == "" {
		return "{}", true
	}
	var m map[string]json.RawMessage
	return args, json.Unmarshal([]byte(args), &m) == nil
}
