// Package a2a serves every agent, team and workflow as an A2A (Agent2Agent)
// agent: an agent card per target, a directory card at the well-known path,
// and a JSON-RPC endpoint per target (message/send, message/stream,
// tasks/get, tasks/cancel, tasks/resubscribe) through the A2A Go SDK's
// JSON-RPC transport. It translates only: A2A contexts are sessions
// (contextId = session id) and tasks are runs (taskId = run id), so every
// run goes through the run service with its budgets, guardrails,
// approvals, tracing and the caller's key.
//
// Paths:
//
//	GET  /.well-known/agent-card.json                          directory card (skills: every target)
//	GET  /a2a/{agents|teams|workflows}/{name}/.well-known/agent-card.json
//	POST /a2a/{agents|teams|workflows}/{name}                  JSON-RPC endpoint (the card's url)
package a2a

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"strings"
	"time"

	sdk "github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// ProtocolVersion is the A2A protocol version the cards announce (the
// SDK's).
const ProtocolVersion = "0.3.0"

// CardPath is the well-known path of an agent card (A2A 0.3), relative to
// the agent's base URL.
const CardPath = "/.well-known/agent-card.json"

// Engine is what the A2A surface needs from the engine.
type Engine interface {
	Current() *engine.Snapshot
}

// Runs is what the A2A surface needs from the run service.
type Runs interface {
	Start(ctx context.Context, p session.Params) (*session.Turn, error)
	Cancel(ctx context.Context, runID string, m session.Match) (bool, error)
	CancelPaused(ctx context.Context, runID, by string) (bool, error)
	Resume(ctx context.Context, p session.ResumeParams) (*session.Replay, error)
}

// Store is what the A2A surface reads: runs, as tasks.
type Store interface {
	GetRun(ctx context.Context, id string, f store.Filter) (*store.Run, error)
}

var (
	_ Engine = (*engine.Engine)(nil)
	_ Runs   = (*session.Service)(nil)
	_ Store  = (*store.DB)(nil)
)

// Options configure a Handler.
type Options struct {
	Engine Engine
	Runs   Runs
	Store  Store
	Keys   *auth.Keyring
	// Deny answers requests without a valid key or scope, as the API does.
	Deny   auth.Deny
	Logger *slog.Logger
	// Body bounds a request's body; Timeout bounds the card routes (runs
	// are bounded by their specs). nil bounds nothing.
	Body, Timeout gin.HandlerFunc
	// Limits enforces the keys' and users' rate limits; nil limits nothing.
	Limits *ratelimit.Limiter
	// CancelWait is how long tasks/cancel waits for the run to end, so its
	// answer says canceled (default 5s).
	CancelWait time.Duration
	// Version is the server's version, announced in the cards.
	Version string
}

// Handler serves the A2A routes.
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
	if opts.CancelWait == 0 {
		opts.CancelWait = 5 * time.Second
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	return &Handler{opts: opts, log: opts.Logger.With("component", "a2a")}
}

// Register mounts the cards and the JSON-RPC endpoints on r, which carries
// the server's own middleware (host check, CORS). Cards need agents:read
// (they name the targets, as GET /agents does); the JSON-RPC endpoint needs
// agents:run for every method, since each one starts, reads or stops a run.
func (h *Handler) Register(r gin.IRouter) {
	keyed := r.Group("", h.opts.Body, auth.Bearer(h.opts.Keys, h.opts.Deny))
	if h.opts.Limits != nil {
		keyed.Use(h.opts.Limits.Middleware(func(c *gin.Context, err error) {
			status, msg, _ := api.Status(err)
			c.AbortWithStatusJSON(status, gin.H{"detail": msg})
		}))
	}
	read := auth.Require(auth.ScopeAgentsRead, h.opts.Deny)
	keyed.GET(CardPath, h.opts.Timeout, read, h.directoryCard)
	keyed.GET("/a2a/:kind/:name"+CardPath, h.opts.Timeout, read, h.agentCard)
	keyed.POST("/a2a/:kind/:name", auth.Require(auth.ScopeAgentsRun, h.opts.Deny), h.rpc)
}

// Routes document the surface in the API's OpenAPI document.
func Routes() []api.Route {
	return []api.Route{
		{Method: "get", Path: CardPath, Tag: "A2A", Summary: "Directory agent card (A2A)",
			Desc: "This server as an A2A agent card whose skills are its agents, teams and workflows; each skill's tags name the card of that target.", Resp: sdk.AgentCard{}},
		{Method: "get", Path: "/a2a/{kind}/{name}" + CardPath, Tag: "A2A", Summary: "Agent card (A2A)",
			Desc: "kind is agents, teams or workflows. The card's url is the target's JSON-RPC endpoint.", Resp: sdk.AgentCard{}},
		{Method: "post", Path: "/a2a/{kind}/{name}", Tag: "A2A", Summary: "A2A JSON-RPC endpoint",
			Desc: "message/send, message/stream (SSE), tasks/get, tasks/cancel, tasks/resubscribe. contextId is the session id, taskId the run id; a run paused on approvals is input-required.", Streams: true},
	}
}

// kinds maps the path's kind segment to targets, as the REST routes name
// them.
var kinds = map[string]spec.Kind{"agents": spec.KindAgent, "teams": spec.KindTeam, "workflows": spec.KindWorkflow}

// target is one agent, team or workflow of the current snapshot.
type target struct {
	kind        spec.Kind
	segment     string // agents, teams, workflows
	name        string
	description string
}

// targets lists the snapshot's targets, agents first.
func targets(snap *engine.Snapshot) []target {
	var out []target
	for _, a := range snap.Agents() {
		out = append(out, target{spec.KindAgent, "agents", a.Name(), a.Spec.Description})
	}
	for _, t := range snap.Teams() {
		out = append(out, target{spec.KindTeam, "teams", t.Name(), t.Spec.Description})
	}
	for _, w := range snap.Workflows() {
		out = append(out, target{spec.KindWorkflow, "workflows", w.Name(), w.Spec.Description})
	}
	return out
}

// find returns the target the path names, if the current snapshot serves
// it.
func (h *Handler) find(c *gin.Context) (target, bool) {
	kind, ok := kinds[c.Param("kind")]
	if !ok {
		return target{}, false
	}
	for _, t := range targets(h.opts.Engine.Current()) {
		if t.kind == kind && t.name == c.Param("name") {
			return t, true
		}
	}
	return target{}, false
}

// card describes a target as an A2A agent: text in, text out, streaming,
// one skill (what its description says).
func (h *Handler) card(c *gin.Context, t target) *sdk.AgentCard {
	desc := t.description
	if desc == "" {
		desc = fmt.Sprintf("Troupe %s %s.", strings.ToLower(string(t.kind)), t.name)
	}
	card := &sdk.AgentCard{
		Name: t.name, Description: desc, URL: api.BaseURL(c.Request) + "/a2a/" + t.segment + "/" + t.name,
		PreferredTransport: sdk.TransportProtocolJSONRPC, ProtocolVersion: ProtocolVersion, Version: h.opts.Version,
		Capabilities:      sdk.AgentCapabilities{Streaming: true},
		DefaultInputModes: []string{"text/plain"}, DefaultOutputModes: []string{"text/plain"},
		Skills: []sdk.AgentSkill{{ID: t.segment + "/" + t.name, Name: t.name, Description: desc,
			Tags: []string{strings.ToLower(string(t.kind))}}},
		Provider: &sdk.AgentProvider{Org: "Troupe", URL: api.BaseURL(c.Request)},
	}
	h.secure(card)
	return card
}

// secure announces bearer authentication on a card when the server has keys.
func (h *Handler) secure(card *sdk.AgentCard) {
	if h.opts.Keys.Len() == 0 {
		return
	}
	card.SecuritySchemes = sdk.NamedSecuritySchemes{"bearer": sdk.HTTPAuthSecurityScheme{Scheme: "bearer",
		Description: "A Troupe API key (agents:run to send messages)."}}
	card.Security = []sdk.SecurityRequirements{{"bearer": sdk.SecuritySchemeScopes{}}}
}

func (h *Handler) agentCard(c *gin.Context) {
	t, ok := h.find(c)
	if !ok {
		c.JSON(http.StatusNotFound, gin.H{"detail": fmt.Sprintf("no %s named %q: GET /.well-known/agent-card.json lists every target", strings.TrimSuffix(c.Param("kind"), "s"), c.Param("name"))})
		return
	}
	c.JSON(http.StatusOK, h.card(c, t))
}

// directoryCard answers the well-known path: the server as one A2A agent
// whose skills are its targets. A client picks one and fetches its own card
// (the skill's id is its path under /a2a/); the directory's url is the
// first target's endpoint, so a client that sends straight to it reaches an
// agent rather than nothing.
func (h *Handler) directoryCard(c *gin.Context) {
	ts := targets(h.opts.Engine.Current())
	card := &sdk.AgentCard{
		Name: "troupe", Description: "A Troupe server: each skill is an agent, team or workflow with its own card at /a2a/{skill id}" + CardPath + ".",
		PreferredTransport: sdk.TransportProtocolJSONRPC, ProtocolVersion: ProtocolVersion, Version: h.opts.Version,
		Capabilities:      sdk.AgentCapabilities{Streaming: true},
		DefaultInputModes: []string{"text/plain"}, DefaultOutputModes: []string{"text/plain"},
		Skills:   []sdk.AgentSkill{},
		Provider: &sdk.AgentProvider{Org: "Troupe", URL: api.BaseURL(c.Request)},
	}
	for i, t := range ts {
		one := h.card(c, t)
		if i == 0 {
			card.URL = one.URL
		}
		card.Skills = append(card.Skills, one.Skills[0])
	}
	h.secure(card)
	c.JSON(http.StatusOK, card)
}

// rpc serves a target's JSON-RPC endpoint with the SDK's transport over a
// request handler bound to the target and the caller.
func (h *Handler) rpc(c *gin.Context) {
	t, ok := h.find(c)
	if !ok {
		c.JSON(http.StatusNotFound, gin.H{"detail": fmt.Sprintf("no %s named %q: GET /.well-known/agent-card.json lists every target", strings.TrimSuffix(c.Param("kind"), "s"), c.Param("name"))})
		return
	}
	p := auth.Of(c)
	by := "anonymous" // who cancels a paused run, as the approvals record it
	if k := p.Key(); k != nil && k.UserID != "" {
		by = k.UserID
	} else if k != nil {
		by = "key:" + k.Name
	}
	rh := &requests{h: h, target: t, userID: p.UserID(""), bound: p.Bound(), by: by, link: api.RunLink(c),
		admit: func() (*ratelimit.Admission, error) { return h.opts.Limits.AdmitRun(c) }}
	a2asrv.NewJSONRPCHandler(rh).ServeHTTP(c.Writer, c.Request)
}

// requests answers one JSON-RPC request for one target and caller.
type requests struct {
	h      *Handler
	target target
	userID string
	bound  bool
	by     string
	link   session.Link
	// admit reserves the caller's concurrent runs for a run a message
	// starts, or refuses it: the JSON-RPC route is not a run route, since
	// most of its methods start nothing.
	admit func() (*ratelimit.Admission, error)
}

var _ a2asrv.RequestHandler = (*requests)(nil)

// text joins a message's text parts: Troupe's targets take text.
func text(m *sdk.Message) (string, error) {
	if m == nil {
		return "", fmt.Errorf("%w: params.message is required", sdk.ErrInvalidParams)
	}
	var b strings.Builder
	for _, p := range m.Parts {
		switch p := p.(type) {
		case sdk.TextPart:
			b.WriteString(p.Text)
		case *sdk.TextPart:
			b.WriteString(p.Text)
		}
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", fmt.Errorf("%w: the message has no text part: send the task as text", sdk.ErrInvalidParams)
	}
	if m.TaskID != "" {
		// A task is a run, which ends with its answer or waits on approvals
		// decided through /approvals; a new message is a new turn.
		return "", fmt.Errorf("%w: task %s cannot take another message: send it without taskId, with contextId %q, to continue the conversation", sdk.ErrInvalidParams, m.TaskID, m.ContextID)
	}
	return b.String(), nil
}

// start starts a run for message m.
func (r *requests) start(ctx context.Context, params *sdk.MessageSendParams, stream bool) (*session.Turn, string, error) {
	if params == nil {
		return nil, "", fmt.Errorf("%w: params are required", sdk.ErrInvalidParams)
	}
	msg, err := text(params.Message)
	if err != nil {
		return nil, "", err
	}
	adm, err := r.admit()
	if err != nil {
		// A limit is the server's to lift, not a fault in the params.
		return nil, "", fmt.Errorf("%w: %w", sdk.ErrServerError, err)
	}
	turn, err := r.h.opts.Runs.Start(ctx, session.Params{Kind: r.target.kind, Name: r.target.name, Message: msg,
		SessionID: params.Message.ContextID, UserID: r.userID, BoundUser: r.bound, Stream: stream, Link: r.link})
	if err != nil {
		adm.Release()
		return nil, "", r.refusal(err)
	}
	adm.Bind(turn.RunID())
	return turn, msg, nil
}

// refusal maps a run service error to an A2A one, with the message the API
// would answer.
func (r *requests) refusal(err error) error {
	status, msg, ok := api.Status(err)
	switch {
	case ok && status < 500:
		return fmt.Errorf("%w: %s", sdk.ErrInvalidParams, msg)
	case ok:
		return fmt.Errorf("%w: %s", sdk.ErrServerError, msg)
	}
	r.h.log.Error("a2a request failed", "target", r.target.name, "err", err)
	return fmt.Errorf("%w: %w", sdk.ErrInternalError, err)
}

// userMessage is the task's first message, as A2A histories show it.
func userMessage(runID, sessionID, msg string) *sdk.Message {
	return &sdk.Message{ID: runID + "-input", Role: sdk.MessageRoleUser, ContextID: sessionID, TaskID: sdk.TaskID(runID), Parts: sdk.ContentParts{sdk.TextPart{Text: msg}}}
}

// answerID names a task's one artifact: the answer.
func answerID(runID string) sdk.ArtifactID { return sdk.ArtifactID(runID + "-answer") }

// State maps a run status to a task state.
func State(s event.Status) sdk.TaskState {
	switch s {
	case event.StatusPending:
		return sdk.TaskStateSubmitted
	case event.StatusCompleted:
		return sdk.TaskStateCompleted
	case event.StatusError:
		return sdk.TaskStateFailed
	case event.StatusCancelled:
		return sdk.TaskStateCanceled
	case event.StatusPaused:
		return sdk.TaskStateInputRequired
	}
	return sdk.TaskStateWorking
}

// status is a run's task status; its message says why a run did not
// complete (the error, or what a paused run waits for).
func status(r *session.Run) sdk.TaskStatus {
	now := time.Now().UTC()
	st := sdk.TaskStatus{State: State(r.Status), Timestamp: &now}
	if !r.UpdatedAt.IsZero() {
		ts := r.UpdatedAt.UTC()
		st.Timestamp = &ts
	}
	var note string
	switch r.Status {
	case event.StatusError, event.StatusCancelled:
		note = r.Error
	case event.StatusPaused:
		note = "waiting for approval: decide the run's pending approvals (GET /approvals), then it continues"
	}
	if note != "" {
		st.Message = &sdk.Message{ID: r.ID + "-status", Role: sdk.MessageRoleAgent, ContextID: r.SessionID, TaskID: sdk.TaskID(r.ID), Parts: sdk.ContentParts{sdk.TextPart{Text: note}}}
	}
	return st
}

// task is a run as an A2A task: its input, its status, and its answer as
// the one artifact once it has one.
func task(r *session.Run) *sdk.Task {
	t := &sdk.Task{ID: sdk.TaskID(r.ID), ContextID: r.SessionID, Status: status(r),
		History: []*sdk.Message{userMessage(r.ID, r.SessionID, r.Input)}}
	if r.Content != "" {
		t.Artifacts = []*sdk.Artifact{{ID: answerID(r.ID), Name: "answer", Parts: sdk.ContentParts{sdk.TextPart{Text: r.Content}}}}
		if r.Status == event.StatusCompleted {
			t.History = append(t.History, &sdk.Message{ID: r.ID + "-answer", Role: sdk.MessageRoleAgent, ContextID: r.SessionID, TaskID: sdk.TaskID(r.ID), Parts: sdk.ContentParts{sdk.TextPart{Text: r.Content}}})
		}
	}
	return t
}

// OnSendMessage runs the target to its end (or its pause) and answers the
// task.
func (r *requests) OnSendMessage(ctx context.Context, params *sdk.MessageSendParams) (sdk.SendMessageResult, error) {
	turn, _, err := r.start(ctx, params, false)
	if err != nil {
		return nil, err
	}
	run := turn.Execute(ctx, func(event.Event) {})
	return task(run), nil
}

// OnSendMessageStream runs the target and streams it: the task (working),
// the answer's chunks as appends to its artifact, and a final status.
func (r *requests) OnSendMessageStream(ctx context.Context, params *sdk.MessageSendParams) iter.Seq2[sdk.Event, error] {
	return func(yield func(sdk.Event, error) bool) {
		turn, msg, err := r.start(ctx, params, true)
		if err != nil {
			yield(nil, err)
			return
		}
		now := time.Now().UTC()
		first := &sdk.Task{ID: sdk.TaskID(turn.RunID()), ContextID: turn.SessionID(), Status: sdk.TaskStatus{State: sdk.TaskStateWorking, Timestamp: &now},
			History: []*sdk.Message{userMessage(turn.RunID(), turn.SessionID(), msg)}}
		r.stream(ctx, first, yield, func(ctx context.Context, emit func(event.Event)) (*session.Run, error) {
			return turn.Execute(ctx, emit), nil
		})
	}
}

// stream yields first, then the events run emits as A2A events, ending with
// the final status. run executes on a goroutine this function owns and
// waits for; a client that stops reading cancels it.
func (r *requests) stream(ctx context.Context, first *sdk.Task, yield func(sdk.Event, error) bool,
	run func(ctx context.Context, emit func(event.Event)) (*session.Run, error)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan event.Event, 64)
	type outcome struct {
		run *session.Run
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		defer close(events)
		res, err := run(ctx, func(e event.Event) {
			select {
			case events <- e:
			case <-ctx.Done():
			}
		})
		done <- outcome{res, err}
	}()
	drain := func() {
		cancel()
		for range events {
		}
	}
	if !yield(first, nil) {
		drain()
		return
	}
	info := first.TaskInfo()
	streamed := false
	for e := range events {
		if e.Depth != 0 || e.Type != event.RunContent || e.Content == "" {
			continue
		}
		ev := &sdk.TaskArtifactUpdateEvent{TaskID: info.TaskID, ContextID: info.ContextID, Append: streamed,
			Artifact: &sdk.Artifact{ID: answerID(string(info.TaskID)), Name: "answer", Parts: sdk.ContentParts{sdk.TextPart{Text: e.Content}}}}
		streamed = true
		if !yield(ev, nil) {
			drain()
			return
		}
	}
	out := <-done
	if out.err != nil {
		yield(nil, r.refusal(out.err))
		return
	}
	res := out.run
	if !streamed && res.Content != "" {
		// A workflow's answer is its output, known only at its end.
		if !yield(&sdk.TaskArtifactUpdateEvent{TaskID: info.TaskID, ContextID: info.ContextID, LastChunk: true,
			Artifact: &sdk.Artifact{ID: answerID(res.ID), Name: "answer", Parts: sdk.ContentParts{sdk.TextPart{Text: res.Content}}}}, nil) {
			return
		}
	} else if streamed {
		if !yield(&sdk.TaskArtifactUpdateEvent{TaskID: info.TaskID, ContextID: info.ContextID, Append: true, LastChunk: true,
			Artifact: &sdk.Artifact{ID: answerID(res.ID), Name: "answer", Parts: sdk.ContentParts{}}}, nil) {
			return
		}
	}
	yield(&sdk.TaskStatusUpdateEvent{TaskID: info.TaskID, ContextID: info.ContextID, Status: status(res), Final: true}, nil)
}

// run returns the caller's top-level run of this target that id names.
func (r *requests) run(ctx context.Context, id sdk.TaskID) (*session.Run, error) {
	run, err := r.h.opts.Store.GetRun(ctx, string(id), store.Filter{UserID: r.userID})
	if errors.Is(err, store.ErrNotFound) || err == nil && (run.ComponentID != r.target.name || run.Type != string(session.TypeOf(r.target.kind)) || run.ParentRunID != "") {
		return nil, fmt.Errorf("%w: no task %s of %s %s", sdk.ErrTaskNotFound, id, strings.ToLower(string(r.target.kind)), r.target.name)
	}
	if err != nil {
		return nil, r.refusal(err)
	}
	return run, nil
}

// OnGetTask answers the run's current state.
func (r *requests) OnGetTask(ctx context.Context, q *sdk.TaskQueryParams) (*sdk.Task, error) {
	run, err := r.run(ctx, q.ID)
	if err != nil {
		return nil, err
	}
	return task(run), nil
}

// OnCancelTask cancels the run (on whichever replica executes it; a paused
// one ends at once, its approvals rejected) and answers its state once it
// has ended, or after Options.CancelWait.
func (r *requests) OnCancelTask(ctx context.Context, p *sdk.TaskIDParams) (*sdk.Task, error) {
	run, err := r.run(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	switch {
	case run.Status == event.StatusPaused:
		// Paused counts as an end for the run service; for A2A it is
		// input-required, which a client may cancel.
		ok, err := r.h.opts.Runs.CancelPaused(ctx, run.ID, r.by)
		if err != nil {
			return nil, r.refusal(err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: task %s is no longer paused", sdk.ErrTaskNotCancelable, p.ID)
		}
	case run.Status.Terminal():
		return nil, fmt.Errorf("%w: task %s has ended (%s)", sdk.ErrTaskNotCancelable, p.ID, State(run.Status))
	default:
		ok, err := r.h.opts.Runs.Cancel(ctx, run.ID, session.Match{Kind: r.target.kind, Name: r.target.name, UserID: r.userID})
		if err != nil {
			return nil, r.refusal(err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: task %s is not in progress", sdk.ErrTaskNotCancelable, p.ID)
		}
	}
	wait, stop := context.WithTimeout(ctx, r.h.opts.CancelWait)
	defer stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !run.Status.Terminal() || run.Status == event.StatusPaused {
		select {
		case <-wait.Done():
			return task(run), nil
		case <-tick.C:
		}
		if run, err = r.run(ctx, p.ID); err != nil {
			return nil, err
		}
	}
	return task(run), nil
}

// OnResubscribeToTask streams a task's events again from its start, then
// live until it ends, on any replica.
func (r *requests) OnResubscribeToTask(ctx context.Context, p *sdk.TaskIDParams) iter.Seq2[sdk.Event, error] {
	return func(yield func(sdk.Event, error) bool) {
		run, err := r.run(ctx, p.ID)
		if err != nil {
			yield(nil, err)
			return
		}
		replay, err := r.h.opts.Runs.Resume(ctx, session.ResumeParams{Kind: r.target.kind, Name: r.target.name, RunID: run.ID, After: -1, UserID: r.userID})
		if err != nil {
			yield(nil, r.refusal(err))
			return
		}
		first := task(run)
		first.Artifacts, first.Status = nil, sdk.TaskStatus{State: sdk.TaskStateWorking}
		r.stream(ctx, first, yield, func(ctx context.Context, emit func(event.Event)) (*session.Run, error) {
			if err := replay.Stream(ctx, func(e event.Event) error { emit(e); return nil }); err != nil {
				return nil, err
			}
			return r.run(ctx, p.ID)
		})
	}
}

// Push notifications are not offered: a client streams or polls.

func (r *requests) OnGetTaskPushConfig(context.Context, *sdk.GetTaskPushConfigParams) (*sdk.TaskPushConfig, error) {
	return nil, sdk.ErrPushNotificationNotSupported
}

func (r *requests) OnListTaskPushConfig(context.Context, *sdk.ListTaskPushConfigParams) ([]*sdk.TaskPushConfig, error) {
	return nil, sdk.ErrPushNotificationNotSupported
}

func (r *requests) OnSetTaskPushConfig(context.Context, *sdk.TaskPushConfig) (*sdk.TaskPushConfig, error) {
	return nil, sdk.ErrPushNotificationNotSupported
}

func (r *requests) OnDeleteTaskPushConfig(context.Context, *sdk.DeleteTaskPushConfigParams) error {
	return sdk.ErrPushNotificationNotSupported
}

// OnGetExtendedAgentCard: the public card says everything.
func (r *requests) OnGetExtendedAgentCard(context.Context) (*sdk.AgentCard, error) {
	return nil, sdk.ErrAuthenticatedExtendedCardNotConfigured
}
