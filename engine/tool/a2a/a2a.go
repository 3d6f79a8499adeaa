// Package a2a provides the Tool type a2a: a remote A2A (Agent2Agent) agent
// that agents call as a tool and that teams list as a member
// ("a2a:<tool name>"). It speaks JSON-RPC through the a2a-go SDK's client,
// over an HTTP client that enforces the egress policy (allowed_hosts) on
// every connection, with the document's headers on every request. As a
// team member the remote answer streams through chunk by chunk
// (message/stream); as a tool the answer is returned whole, since a tool
// call has no stream of its own in the agent loop.
package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	sdk "github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/engine/tool/egress"
	"github.com/troupehq/troupe/spec"
)

// cardPath is where an A2A agent publishes its card under its base URL.
const cardPath = "/.well-known/agent-card.json"

// maxCard bounds an agent card's size.
const maxCard = 1 << 20

// Module registers the a2a type. Its tools hold idle connections only, so
// an unchanged document's tool is reused by the next snapshot.
func Module() tool.Module {
	return tool.Module{Type: spec.ToolA2A, New: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Tool, error) {
		return New(s)
	}}
}

// Remote is a remote A2A agent. Safe for concurrent use: one instance serves
// every run of every agent and team that lists it.
type Remote struct {
	name, description string
	url               string
	timeout           time.Duration
	http              *http.Client

	mu     sync.Mutex
	client *a2aclient.Client // connected on first use
	card   *sdk.AgentCard
}

var (
	_ tool.Tool   = (*Remote)(nil)
	_ tool.Closer = (*Remote)(nil)
)

// New builds the tool of an a2a document. It connects nothing: the card is
// read on first use.
func New(s *spec.Tool) (*Remote, error) {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &tool.FieldError{Field: "url", Err: errors.New("must be an http(s) URL of the remote agent's card or endpoint")}
	}
	hc := egress.Policy{AllowedHosts: s.AllowedHosts}.Client(0) // calls are bounded by their context
	hc.Transport = headers{h: maps.Clone(s.Headers), next: hc.Transport}
	desc := s.Description
	if desc == "" {
		desc = "Ask the remote agent at " + u.Host + " and get its answer."
	}
	return &Remote{name: s.Name, description: desc, url: s.URL, timeout: time.Duration(s.Timeout), http: hc}, nil
}

// headers sets the document's headers on every request.
type headers struct {
	h    map[string]string
	next http.RoundTripper
}

func (t headers) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.h) > 0 {
		r = r.Clone(r.Context())
		for k, v := range t.h {
			r.Header.Set(k, v)
		}
	}
	return t.next.RoundTrip(r)
}

// Def describes the tool: one message in, the remote answer out.
func (r *Remote) Def() model.ToolDef {
	return model.ToolDef{Name: tool.SafeName(r.name), Description: r.description, Parameters: map[string]any{
		"type": "object",
		"properties": map[string]any{
			"message": map[string]any{"type": "string", "description": "The task or question for the remote agent, self-contained."},
		},
		"required": []any{"message"},
	}}
}

// Call sends the message and returns the remote agent's answer.
func (r *Remote) Call(ctx context.Context, raw json.RawMessage) (string, error) {
	var args struct {
		Message string `json:"message"`
	}
	if err := tool.Decode(raw, &args); err != nil {
		return "", err
	}
	if strings.TrimSpace(args.Message) == "" {
		return "", tool.ArgumentError("message is required")
	}
	return r.Ask(ctx, args.Message, nil)
}

// Close releases idle connections.
func (r *Remote) Close() error {
	r.http.CloseIdleConnections()
	return nil
}

// connect returns the SDK client, reading the card on first use. A url that
// ends in .json is the card; another is the agent's base URL (its card at
// /.well-known/agent-card.json) or, when no card is there, its JSON-RPC
// endpoint.
func (r *Remote) connect(ctx context.Context) (*a2aclient.Client, *sdk.AgentCard, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		return r.client, r.card, nil
	}
	card, err := r.readCard(ctx)
	if err != nil {
		return nil, nil, err
	}
	c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(r.http))
	if err != nil {
		return nil, nil, fmt.Errorf("remote agent %s: %w", r.name, err)
	}
	r.client, r.card = c, card
	return c, card, nil
}

func (r *Remote) readCard(ctx context.Context) (*sdk.AgentCard, error) {
	cardURL := r.url
	isCard := strings.HasSuffix(strings.SplitN(r.url, "?", 2)[0], ".json")
	if !isCard {
		cardURL = strings.TrimSuffix(r.url, "/") + cardPath
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cardURL, nil)
	if err != nil {
		return nil, fmt.Errorf("remote agent %s: %w", r.name, err)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remote agent %s: reading its card: %w", r.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && !isCard {
		// No card: the url is the endpoint itself.
		return &sdk.AgentCard{Name: r.name, URL: r.url, PreferredTransport: sdk.TransportProtocolJSONRPC,
			Capabilities: sdk.AgentCapabilities{Streaming: true}}, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("remote agent %s: its card at %s answered %s: check the url and the headers (an API key?)", r.name, cardURL, resp.Status)
	}
	var card sdk.AgentCard
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxCard)).Decode(&card); err != nil {
		return nil, fmt.Errorf("remote agent %s: its card at %s is not an A2A agent card: %w", r.name, cardURL, err)
	}
	if card.URL == "" {
		return nil, fmt.Errorf("remote agent %s: its card at %s has no url", r.name, cardURL)
	}
	return &card, nil
}

// Ask sends message to the remote agent and returns its answer: the text of
// its artifacts, else of its last message. onChunk, when set, receives the
// answer's chunks as they arrive (the agent streams when its card says it
// can).
func (r *Remote) Ask(ctx context.Context, message string, onChunk func(string)) (string, error) {
	c, card, err := r.connect(ctx)
	if err != nil {
		return "", err
	}
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	params := &sdk.MessageSendParams{Message: sdk.NewMessage(sdk.MessageRoleUser, sdk.TextPart{Text: message})}
	var a answer
	if card.Capabilities.Streaming {
		for ev, err := range c.SendStreamingMessage(ctx, params) {
			if err != nil {
				return "", r.failed(ctx, err)
			}
			a.add(ev, onChunk)
		}
	} else {
		res, err := c.SendMessage(ctx, params)
		if err != nil {
			return "", r.failed(ctx, err)
		}
		a.add(res, onChunk)
	}
	return a.result(r.name)
}

// failed wraps a transport error, saying when it was the time limit.
func (r *Remote) failed(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("remote agent %s did not answer within %s (timeout): %w", r.name, r.timeout, err)
	}
	return fmt.Errorf("remote agent %s: %w", r.name, err)
}

// answer collects a task's events.
type answer struct {
	artifacts []string // text per artifact, in order
	ids       map[sdk.ArtifactID]int
	message   string // the last agent message's text
	state     sdk.TaskState
	status    string // the final status message's text
}

func textOf(parts sdk.ContentParts) string {
	var b strings.Builder
	for _, p := range parts {
		switch p := p.(type) {
		case sdk.TextPart:
			b.WriteString(p.Text)
		case *sdk.TextPart:
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func (a *answer) artifact(art *sdk.Artifact, appendTo bool, onChunk func(string)) {
	if art == nil {
		return
	}
	if a.ids == nil {
		a.ids = map[sdk.ArtifactID]int{}
	}
	s := textOf(art.Parts)
	i, ok := a.ids[art.ID]
	switch {
	case !ok:
		a.ids[art.ID] = len(a.artifacts)
		a.artifacts = append(a.artifacts, s)
	case appendTo:
		a.artifacts[i] += s
	default:
		a.artifacts[i] = s
	}
	if onChunk != nil && s != "" {
		onChunk(s)
	}
}

func (a *answer) add(ev sdk.Event, onChunk func(string)) {
	switch ev := ev.(type) {
	case *sdk.Message:
		if ev.Role == sdk.MessageRoleAgent {
			a.message = textOf(ev.Parts)
			a.state = sdk.TaskStateCompleted
			if onChunk != nil && a.message != "" && len(a.artifacts) == 0 {
				onChunk(a.message)
			}
		}
	case *sdk.Task:
		a.state = ev.Status.State
		if ev.Status.Message != nil {
			a.status = textOf(ev.Status.Message.Parts)
		}
		if len(a.artifacts) == 0 {
			for _, art := range ev.Artifacts {
				a.artifact(art, false, onChunk)
			}
		}
		for _, m := range ev.History {
			if m.Role == sdk.MessageRoleAgent {
				a.message = textOf(m.Parts)
			}
		}
	case *sdk.TaskArtifactUpdateEvent:
		a.artifact(ev.Artifact, ev.Append, onChunk)
	case *sdk.TaskStatusUpdateEvent:
		a.state = ev.Status.State
		if ev.Status.Message != nil {
			a.status = textOf(ev.Status.Message.Parts)
			if ev.Status.Message.Role == sdk.MessageRoleAgent && ev.Final && ev.Status.State == sdk.TaskStateCompleted {
				a.message = a.status
			}
		}
	}
}

func (a *answer) result(name string) (string, error) {
	switch a.state {
	case sdk.TaskStateCompleted:
		if s := strings.Join(a.artifacts, "\n"); s != "" {
			return s, nil
		}
		return a.message, nil
	case sdk.TaskStateInputRequired, sdk.TaskStateAuthRequired:
		return "", fmt.Errorf("remote agent %s needs more (%s) before it can answer: %s", name, a.state, a.status)
	case sdk.TaskStateFailed, sdk.TaskStateCanceled, sdk.TaskStateRejected:
		return "", fmt.Errorf("remote agent %s ended %s: %s", name, a.state, a.status)
	}
	return "", fmt.Errorf("remote agent %s stopped before its task ended (last state %q)", name, a.state)
}

// Member returns the remote agent as a team member named name (as the team
// lists it: "a2a:<tool name>"), whose answer streams as its content.
func (r *Remote) Member(name string) agent.Runner { return &member{r: r, name: name} }

type member struct {
	r    *Remote
	name string
}

var _ agent.Runner = (*member)(nil)

func (m *member) Name() string                          { return m.name }
func (m *member) Description() string                   { return m.r.description }
func (m *member) ModelInfo() (modelID, provider string) { return m.r.url, spec.ToolA2A }
func (m *member) HistoryRuns() int                      { return 0 }

// Execute asks the remote agent the member's task; its chunks are the
// member's RunContent events when the team streams.
func (m *member) Execute(ctx context.Context, in agent.Input, emit func(event.Event)) *agent.Result {
	ev := func(t event.Type) event.Event {
		return event.Event{Type: t, RunID: in.RunID, SessionID: in.SessionID, AgentID: m.name, CreatedAt: time.Now().UTC(),
			Model: m.r.url, Provider: spec.ToolA2A}
	}
	emit(ev(event.RunStarted))
	res := &agent.Result{RunID: in.RunID, Input: in.Message, Runner: m.name, Model: m.r.url, Provider: spec.ToolA2A}
	var onChunk func(string)
	if in.Stream {
		onChunk = func(s string) {
			e := ev(event.RunContent)
			e.Content = s
			emit(e)
		}
	}
	content, err := m.r.Ask(ctx, in.Message, onChunk)
	switch {
	case err != nil && ctx.Err() != nil:
		res.Status, res.Err = event.StatusCancelled, context.Canceled
		e := ev(event.RunCancelled)
		e.Content = "run cancelled"
		emit(e)
	case err != nil:
		res.Status, res.Err, res.ErrorKind = event.StatusError, err, "remote"
		e := ev(event.RunError)
		e.Content, e.ErrorKind = err.Error(), res.ErrorKind
		emit(e)
	default:
		if !in.Stream && content != "" {
			e := ev(event.RunContent)
			e.Content = content
			emit(e)
		}
		res.Status, res.Content = event.StatusCompleted, content
		res.Messages = []model.Message{{Role: model.RoleUser, Content: in.Message}, {Role: model.RoleAssistant, Content: content}}
		e := ev(event.RunCompleted)
		e.Content = content
		emit(e)
	}
	return res
}
