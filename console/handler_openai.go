package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// The OpenAI-compatible surface: every agent and team is a "model", so OpenAI
// SDKs and chat UIs can talk to them. Errors use OpenAI's error shape here,
// because that is what those clients parse.

// teamModelPrefix names a team whose name is also an agent's.
const teamModelPrefix = "team/"

type openaiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code,omitempty"`
	} `json:"error"`
}

func openaiAbort(c *gin.Context, status int, typ, code, msg string) {
	var e openaiError
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, code
	c.AbortWithStatusJSON(status, e)
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
	return out
}

func (s *Server) openaiModels(c *gin.Context) {
	models := modelIDs(s.opts.Engine.Current())
	if models == nil {
		models = []openaiModel{}
	}
	c.JSON(http.StatusOK, openaiModelList{Object: "list", Data: models})
}

// resolveModel finds the agent or team a model id names: agents first, then
// teams; "team/<name>" always means the team.
func resolveModel(snap *engine.Snapshot, id string) (spec.Kind, string) {
	if name, ok := strings.CutPrefix(id, teamModelPrefix); ok {
		return spec.KindTeam, name
	}
	if _, ok := snap.Agent(id); ok {
		return spec.KindAgent, id
	}
	if _, ok := snap.Team(id); ok {
		return spec.KindTeam, id
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

func (s *Server) chatCompletions(c *gin.Context) {
	var req chatRequest
	if err := json.NewDecoder(c.Request.Body).Decode(&req); err != nil {
		status, msg := http.StatusBadRequest, "malformed JSON body: "+err.Error()
		var he *httpError
		if errors.As(bodyError(err), &he) {
			status, msg = he.status, he.msg
		}
		openaiAbort(c, status, "invalid_request_error", "", msg)
		return
	}
	if req.Model == "" {
		openaiAbort(c, http.StatusBadRequest, "invalid_request_error", "", "model is required: use an agent or team name from GET /v1/models")
		return
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
		openaiAbort(c, http.StatusBadRequest, "invalid_request_error", "", "messages must contain a user message")
		return
	}
	message, err := req.Messages[last].text()
	if err != nil {
		openaiAbort(c, http.StatusBadRequest, "invalid_request_error", "", "messages["+fmt.Sprint(last)+"]: "+err.Error())
		return
	}
	history := []model.Message{}
	for _, m := range req.Messages[:last] {
		text, err := m.text()
		if err != nil {
			openaiAbort(c, http.StatusBadRequest, "invalid_request_error", "", err.Error())
			return
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

	kind, name := resolveModel(s.opts.Engine.Current(), req.Model)
	p := session.Params{Kind: kind, Name: name, Message: message, History: history, SessionID: c.GetHeader(SessionHeader),
		UserID: auth.Of(c).UserID(req.User), Stream: req.Stream, BoundUser: auth.Of(c).Bound(), Link: runLink(c)}
	turn, err := s.opts.Runs.Start(c.Request.Context(), p)
	if err != nil {
		var he *httpError
		if errors.Is(err, session.ErrSessionNotFound) {
			openaiAbort(c, http.StatusNotFound, "invalid_request_error", "session_not_found", err.Error())
		} else if errors.Is(err, session.ErrNotFound) {
			openaiAbort(c, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("The model `%s` does not exist: use an agent or team name from GET /v1/models", req.Model))
		} else if errors.As(runError(err), &he) {
			openaiAbort(c, he.status, "invalid_request_error", "", he.msg)
		} else {
			s.log.Error("starting chat completion", "err", err)
			openaiAbort(c, http.StatusInternalServerError, "server_error", "", "internal error; see the server log")
		}
		return
	}
	c.Header(SessionHeader, turn.SessionID())
	id := "chatcmpl-" + turn.RunID()
	created := time.Now().Unix()
	if !req.Stream {
		run := turn.Execute(c.Request.Context(), func(event.Event) {})
		if run.Status != event.StatusCompleted {
			openaiAbort(c, statusFor(run), "server_error", strings.ToLower(string(run.Status)), "the run did not complete: "+run.Error)
			return
		}
		c.JSON(http.StatusOK, gin.H{
			"id": id, "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []gin.H{{"index": 0, "message": gin.H{"role": "assistant", "content": run.Content}, "finish_reason": "stop", "logprobs": nil}},
			"usage":   usage(run.Metrics),
		})
		return
	}
	w, closed := s.streams.Open(c.Writer)
	defer closed()
	chunk := func(delta gin.H, finish any) gin.H {
		return gin.H{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []gin.H{{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}}}
	}
	_ = w.Event("", chunk(gin.H{"role": "assistant", "content": ""}, nil))
	run := turn.Execute(c.Request.Context(), func(e event.Event) {
		// Only the target's own answer is content; members and tools are
		// internal to the run.
		if e.Depth == 0 && e.Type == event.RunContent && e.Content != "" {
			_ = w.Event("", chunk(gin.H{"content": e.Content}, nil))
		}
	})
	if run.Status != event.StatusCompleted {
		var e openaiError
		e.Error.Message, e.Error.Type, e.Error.Code = "the run did not complete: "+run.Error, "server_error", strings.ToLower(string(run.Status))
		_ = w.Event("", e)
	} else {
		_ = w.Event("", chunk(gin.H{}, "stop"))
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			_ = w.Event("", gin.H{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model, "choices": []gin.H{}, "usage": usage(run.Metrics)})
		}
	}
	_ = w.Data("[DONE]")
}

func usage(m event.Metrics) gin.H {
	return gin.H{"prompt_tokens": m.InputTokens, "completion_tokens": m.OutputTokens, "total_tokens": m.TotalTokens}
}

// statusFor maps a failed run to an HTTP status for non-streaming answers.
func statusFor(r *session.Run) int {
	if r.Status == event.StatusCancelled {
		return 499 // client closed request, as nginx reports it
	}
	return http.StatusBadGateway
}
