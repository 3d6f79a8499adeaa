// Package openai serves Troupe's OpenAI-compatible surface under /v1: every
// agent and team is a "model", so OpenAI SDKs and chat UIs can talk to them.
// Runs go through the run service like every other run; errors use OpenAI's
// error shape here, because that is what those clients parse, with statuses
// from the API's one table (api.Status).
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/console/sse"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/guard"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// Engine is what the OpenAI surface needs from the engine.
type Engine interface {
	Current() *engine.Snapshot
}

// Runs is what the OpenAI surface needs from the run service.
type Runs interface {
	Start(ctx context.Context, p session.Params) (*session.Turn, error)
}

var (
	_ Engine = (*engine.Engine)(nil)
	_ Runs   = (*session.Service)(nil)
)

// Options configure a Handler.
type Options struct {
	Engine  Engine
	Runs    Runs
	Streams *sse.Streams
	Keys    *auth.Keyring
	// Deny answers requests without a valid key or scope. The API's Deny
	// keeps refusals alike on every API route.
	Deny   auth.Deny
	Logger *slog.Logger
	// Body bounds a request's body, in size and in the time it may take to
	// arrive. Timeout bounds GET /v1/models; completions are runs, bounded
	// by their specs. The server builds both; nil bounds nothing.
	Body, Timeout gin.HandlerFunc
	// Limits enforces the keys' and users' rate limits; nil limits
	// nothing.
	Limits *ratelimit.Limiter
}

// Handler serves /v1.
type Handler struct {
	opts Options
	log  *slog.Logger
}

// New returns a Handler; Register mounts its routes.
func New(opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, m := range []*gin.HandlerFunc{&opts.Body, &opts.Timeout} {
		if *m == nil {
			*m = func(*gin.Context) {}
		}
	}
	return &Handler{opts: opts, log: opts.Logger}
}

// Register mounts /v1/models and /v1/chat/completions on r, which carries
// the server's own middleware (host check, CORS).
func (h *Handler) Register(r gin.IRouter) {
	keyed := r.Group("", h.opts.Body, auth.Bearer(h.opts.Keys, h.opts.Deny))
	if h.opts.Limits != nil {
		// Refusals in the OpenAI error format, like the handlers'.
		keyed.Use(h.opts.Limits.Middleware(func(c *gin.Context, err error) {
			h.wrap(func(*gin.Context) error { return err })(c)
		}))
	}
	keyed.GET("/v1/models", h.opts.Timeout, auth.Require(auth.ScopeAgentsRead, h.opts.Deny), h.wrap(h.models))
	keyed.POST("/v1/chat/completions", auth.Require(auth.ScopeAgentsRun, h.opts.Deny), h.wrap(h.chatCompletions))
}

// Routes document the surface in the API's OpenAPI document.
func Routes() []api.Route {
	return []api.Route{
		{Method: "get", Path: "/v1/models", Tag: "OpenAI", Summary: "List models (OpenAI)", Desc: "Agents and teams as OpenAI models.", Resp: openaiModelList{}},
		{Method: "post", Path: "/v1/chat/completions", Tag: "OpenAI", Summary: "Chat completions (OpenAI)",
			Desc: "model is an agent or team name; the messages are the context. Streaming sends chat.completion.chunk frames and data: [DONE]. Every call is stored as a run in a session: without X-Session-Id each call starts a new session (listed in /sessions) and the answer's X-Session-Id header names it; send it back to continue that session.",
			Body: chatRequest{}, Resp: chatCompletion{}, Streams: true},
	}
}

// Error is a refusal in OpenAI's terms: its type and code are what OpenAI
// clients branch on.
type Error struct {
	Status int
	Type   string // invalid_request_error, server_error
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// invalid is a request OpenAI would call an invalid_request_error.
func invalid(status int, code, msg string) *Error {
	return &Error{Status: status, Type: "invalid_request_error", Code: code, Msg: msg}
}

// wrap adapts a handler that returns its error to gin, answering the error
// in OpenAI's shape: an *Error as it says, others with the status the API's
// table gives them.
func (h *Handler) wrap(f func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		err := f(c)
		if err == nil {
			return
		}
		var oe *Error
		if !errors.As(err, &oe) {
			status, msg, ok := api.Status(err)
			oe = invalid(status, "", msg)
			if !ok {
				h.log.Error("chat completion failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
				oe.Type = "server_error"
			}
		}
		c.AbortWithStatusJSON(oe.Status, toOpenAIError(oe))
	}
}

// teamModelPrefix names a team whose name is also an agent's.
const teamModelPrefix = "team/"

// workflowModelPrefix names a workflow whose name an agent or team also has.
const workflowModelPrefix = "workflow/"

type openaiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code,omitempty"`
	} `json:"error"`
}

func toOpenAIError(e *Error) openaiError {
	var out openaiError
	out.Error.Message, out.Error.Type, out.Error.Code = e.Msg, e.Type, e.Code
	return out
}

// openaiModelList answers GET /v1/models.
type openaiModelList struct {
	Object string        `json:"object"` // list
	Data   []openaiModel `json:"data"`
}

type openaiModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Description and Type are Troupe additions; OpenAI clients ignore them.
	Description string `json:"description,omitempty"`
	Type        string `json:"type"`
}

// modelIDs maps OpenAI model ids to targets in a snapshot.
func modelIDs(snap *engine.Snapshot) []openaiModel {
	created := snap.Created().Unix()
	var out []openaiModel
	for _, a := range snap.Agents() {
		out = append(out, openaiModel{ID: a.Name(), Object: "model", Created: created, OwnedBy: "troupe", Description: a.Spec.Description, Type: "agent"})
	}
	for _, t := range snap.Teams() {
		id := t.Name()
		if _, clash := snap.Agent(id); clash {
			id = teamModelPrefix + id
		}
		out = append(out, openaiModel{ID: id, Object: "model", Created: created, OwnedBy: "troupe", Description: t.Spec.Description, Type: "team"})
	}
	for _, wf := range snap.Workflows() {
		id := wf.Name()
		_, agentClash := snap.Agent(id)
		_, teamClash := snap.Team(id)
		if agentClash || teamClash {
			id = workflowModelPrefix + id
		}
		out = append(out, openaiModel{ID: id, Object: "model", Created: created, OwnedBy: "troupe", Description: wf.Spec.Description, Type: "workflow"})
	}
	return out
}

func (h *Handler) models(c *gin.Context) error {
	models := modelIDs(h.opts.Engine.Current())
	if models == nil {
		models = []openaiModel{}
	}
	c.JSON(http.StatusOK, openaiModelList{Object: "list", Data: models})
	return nil
}

// resolveModel finds the agent, team or workflow a model id names: agents
// first, then teams, then workflows; "team/<name>" always means the team,
// "workflow/<name>" the workflow.
func resolveModel(snap *engine.Snapshot, id string) (spec.Kind, string) {
	if name, ok := strings.CutPrefix(id, teamModelPrefix); ok {
		return spec.KindTeam, name
	}
	if name, ok := strings.CutPrefix(id, workflowModelPrefix); ok {
		return spec.KindWorkflow, name
	}
	if _, ok := snap.Agent(id); ok {
		return spec.KindAgent, id
	}
	if _, ok := snap.Team(id); ok {
		return spec.KindTeam, id
	}
	if _, ok := snap.Workflow(id); ok {
		return spec.KindWorkflow, id
	}
	return spec.KindAgent, id
}

type chatRequest struct {
	Model         string        `json:"model" openapi:"required"`
	Messages      []chatMessage `json:"messages" openapi:"required"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	User string `json:"user"`
}

// OpenAPIName names the request's schema as OpenAI does.
func (chatRequest) OpenAPIName() string { return "ChatCompletionRequest" }

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text returns a message's text: a string, or the text parts of an array.
func (m chatMessage) text() (string, error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", errors.New("content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

// SessionHeader binds an OpenAI-compatible request to a Troupe session, so
// its turns are stored together and listed in /sessions.
const SessionHeader = "X-Session-Id"

func (h *Handler) chatCompletions(c *gin.Context) error {
	var req chatRequest
	if err := json.NewDecoder(c.Request.Body).Decode(&req); err != nil {
		return api.BodyError(err)
	}
	if req.Model == "" {
		return invalid(http.StatusBadRequest, "", "model is required: use an agent or team name from GET /v1/models")
	}
	// The last user message is the turn; everything before it is context.
	last := -1
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			last = i
			break
		}
	}
	if last < 0 {
		return invalid(http.StatusBadRequest, "", "messages must contain a user message")
	}
	message, err := req.Messages[last].text()
	if err != nil {
		return invalid(http.StatusBadRequest, "", "messages["+fmt.Sprint(last)+"]: "+err.Error())
	}
	history := []model.Message{}
	for _, m := range req.Messages[:last] {
		text, err := m.text()
		if err != nil {
			return invalid(http.StatusBadRequest, "", err.Error())
		}
		switch m.Role {
		case "user":
			history = append(history, model.Message{Role: model.RoleUser, Content: text})
		case "assistant":
			history = append(history, model.Message{Role: model.RoleAssistant, Content: text})
		}
		// System and developer messages are ignored: the agent's own
		// instructions from its spec apply.
	}

	kind, name := resolveModel(h.opts.Engine.Current(), req.Model)
	p := auth.Of(c)
	turn, err := h.opts.Runs.Start(c.Request.Context(), session.Params{Kind: kind, Name: name, Message: message, History: history,
		SessionID: c.GetHeader(SessionHeader), UserID: p.UserID(req.User), Stream: req.Stream, BoundUser: p.Bound(), Link: api.RunLink(c)})
	if err != nil {
		var se *session.Error
		switch {
		case errors.Is(err, session.ErrSessionNotFound):
			return invalid(http.StatusNotFound, "session_not_found", err.Error())
		case errors.Is(err, session.ErrNotFound):
			return invalid(http.StatusNotFound, "model_not_found", fmt.Sprintf("The model `%s` does not exist: use an agent or team name from GET /v1/models", req.Model))
		case errors.As(err, &se):
			return err // a refusal, classified by the API's table
		}
		return fmt.Errorf("starting chat completion: %w", err)
	}
	ratelimit.Started(c, turn.RunID())
	c.Header(SessionHeader, turn.SessionID())
	id := "chatcmpl-" + turn.RunID()
	created := time.Now().Unix()
	if !req.Stream {
		run := turn.Execute(c.Request.Context(), func(event.Event) {})
		if filtered(run) {
			// As OpenAI answers content its filter stopped: a choice with no
			// content and finish_reason content_filter, not an error.
			c.JSON(http.StatusOK, chatCompletion{
				ID: id, Object: "chat.completion", Created: created, Model: req.Model,
				Choices: []chatChoice{{Index: 0, Message: &chatReply{Role: "assistant"}, FinishReason: "content_filter"}},
				Usage:   usage(run.Metrics),
			})
			return nil
		}
		if run.Status != event.StatusCompleted {
			return &Error{Status: statusFor(run), Type: "server_error", Code: strings.ToLower(string(run.Status)), Msg: incomplete(run)}
		}
		c.JSON(http.StatusOK, chatCompletion{
			ID: id, Object: "chat.completion", Created: created, Model: req.Model,
			Choices: []chatChoice{{Index: 0, Message: &chatReply{Role: "assistant", Content: &run.Content}, FinishReason: "stop"}},
			Usage:   usage(run.Metrics),
		})
		return nil
	}
	w, closed := h.opts.Streams.Open(c.Writer)
	defer closed()
	chunk := func(delta chatReply, finish *string) chatChunk {
		return chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []chatChunkChoice{{Index: 0, Delta: delta, FinishReason: finish}}}
	}
	_ = w.Event("", chunk(chatReply{Role: "assistant", Content: new(string)}, nil))
	streamed := false
	run := turn.Execute(c.Request.Context(), func(e event.Event) {
		// Only the target's own answer is content; members and tools are
		// internal to the run.
		switch {
		case e.Depth == 0 && e.Type == event.RunContent && e.Content != "":
			streamed = true
			_ = w.Event("", chunk(chatReply{Content: &e.Content}, nil))
		case e.Depth == 0 && e.Type == event.ReasoningContentDelta:
			_ = w.Event("", chunk(chatReply{ReasoningContent: e.ReasoningContent}, nil))
		}
	})
	if run.Status == event.StatusCompleted && !streamed && run.Content != "" {
		// A workflow's answer is its output, known only at its end.
		_ = w.Event("", chunk(chatReply{Content: &run.Content}, nil))
	}
	switch {
	case filtered(run):
		reason := "content_filter"
		_ = w.Event("", chunk(chatReply{}, &reason))
	case run.Status != event.StatusCompleted:
		_ = w.Event("", toOpenAIError(&Error{Type: "server_error", Code: strings.ToLower(string(run.Status)), Msg: incomplete(run)}))
	default:
		stop := "stop"
		_ = w.Event("", chunk(chatReply{}, &stop))
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			u := usage(run.Metrics)
			_ = w.Event("", chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model, Choices: []chatChunkChoice{}, Usage: &u})
		}
	}
	_ = w.Data("[DONE]")
	return nil
}

// chatCompletion answers a chat completion that does not stream, in OpenAI's
// shape.
type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"` // chat.completion
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   chatUsage    `json:"usage"`
}

// OpenAPIName names the response's schema as OpenAI does.
func (chatCompletion) OpenAPIName() string { return "ChatCompletion" }

type chatChoice struct {
	Index        int        `json:"index"`
	Message      *chatReply `json:"message"`
	FinishReason string     `json:"finish_reason"`
	// Logprobs is always null: runs report none.
	Logprobs *struct{} `json:"logprobs"`
}

// chatReply is a choice's message, or a chunk's delta, whose fields are
// sent only when set (the last chunk's delta is {}).
type chatReply struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
	// ReasoningContent streams the model's native reasoning, as DeepSeek,
	// vLLM and other OpenAI-wire servers do.
	ReasoningContent string `json:"reasoning_content,omitempty"`
}

// chatChunk is one streamed frame of a chat completion.
type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"` // chat.completion.chunk
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	// Usage is sent in a last frame of its own when stream_options asks.
	Usage *chatUsage `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatReply `json:"delta"`
	FinishReason *string   `json:"finish_reason"`
	Logprobs     *struct{} `json:"logprobs"`
}

type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usage(m event.Metrics) chatUsage {
	return chatUsage{PromptTokens: m.InputTokens, CompletionTokens: m.OutputTokens, TotalTokens: m.TotalTokens}
}

// statusFor maps a failed run to an HTTP status for non-streaming answers.
func statusFor(r *session.Run) int {
	switch r.Status {
	case event.StatusCancelled:
		return 499 // client closed request, as nginx reports it
	case event.StatusPaused:
		// Not a failure: the run waits for a decision, which this
		// surface cannot take.
		return http.StatusConflict
	}
	return http.StatusBadGateway
}

// filtered reports whether a guardrail blocked the run's input or answer,
// which OpenAI clients know as finish_reason content_filter.
func filtered(r *session.Run) bool {
	return r.Status == event.StatusError && r.ErrorKind == guard.ErrorKind
}

// incomplete says why a run did not complete, and for a paused one how to
// go on.
func incomplete(r *session.Run) string {
	if r.Status == event.StatusPaused {
		return fmt.Sprintf("run %s is paused: tool calls need a decision; decide them in the approvals inbox (POST /approvals/{id}/resolve) or continue the run with POST /%ss/%s/runs/%s/continue", r.ID, r.Type, r.ComponentID, r.ID)
	}
	return "the run did not complete: " + r.Error
}
