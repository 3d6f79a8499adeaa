// Package mcpserver serves Troupe as a Model Context Protocol server at
// /mcp (streamable HTTP, through the official go-sdk): every agent, team and
// workflow of the current snapshot is a tool, beside operator tools that
// list sessions, read a session's runs, and continue or cancel a run.
//
// It translates only. Runner tools start runs through the run service, the
// path POST /agents/{id}/runs takes, so budgets, guardrails, rate limits,
// approvals and tracing apply alike; operator tools call the REST API's own
// routes in process with the caller's key, so their scopes, user isolation
// and answers are the API's. The tool set follows reloads: a new snapshot
// adds, changes and removes tools in place, and connected clients receive
// notifications/tools/list_changed without reconnecting.
//
// Tool names are the objects' names. Agents keep their name; a team, then a
// workflow, whose name an earlier kind (or an operator tool) already has is
// prefixed with its kind and a dot ("team.crew", "workflow.crew"), which no
// YAML name can contain; an agent named like an operator tool is
// "agent.<name>".
package mcpserver

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// Engine is what the MCP server needs from the engine: the snapshot whose
// objects are tools, and each new one as reloads publish it.
type Engine interface {
	Current() *engine.Snapshot
	Subscribe() (snapshots <-chan *engine.Snapshot, stop func())
}

// Runs is what the MCP server needs from the run service.
type Runs interface {
	Start(ctx context.Context, p session.Params) (*session.Turn, error)
}

// Store finds the run an operator tool names, among the runs its caller
// may see, to address the API route of its agent, team or workflow.
type Store interface {
	GetRun(ctx context.Context, id string, f store.Filter) (*store.Run, error)
}

var (
	_ Engine = (*engine.Engine)(nil)
	_ Runs   = (*session.Service)(nil)
	_ Store  = (*store.DB)(nil)
)

// Options configure a Server.
type Options struct {
	Engine Engine
	Runs   Runs
	Store  Store
	// API serves the REST API's routes (without the server's host check
	// and CORS, which the /mcp request has passed): operator tools call
	// it in process with the caller's key.
	API http.Handler
	// Keys are the accepted API keys; none means the server runs open.
	Keys *auth.Keyring
	// Limits checks the callers' concurrent runs for the runs tool calls
	// start (their requests' rates are checked by the middleware on /mcp);
	// nil limits nothing.
	Limits  *ratelimit.Limiter
	Logger  *slog.Logger
	Version string
}

// Server is the MCP server. Its tool set is safe for concurrent use: Sync
// may run while clients list and call tools.
type Server struct {
	opts    Options
	log     *slog.Logger
	mcp     *sdk.Server
	handler http.Handler

	mu sync.Mutex
	// tools are the runner tools served now, by tool name; gen is the
	// generation of the snapshot they were built from.
	tools map[string]runnerTool
	gen   uint64
	built bool

	// calls counts the POST requests in progress (a tool call's answers
	// it once its run has ended); idle is closed when it drops to zero
	// while shutdown waits for it.
	callsMu sync.Mutex
	calls   int
	idle    chan struct{}
	// closed is set once shutdown has closed the sessions: a session
	// opened after would hold the shutdown with its event stream.
	closed bool
}

// runnerTool is a served tool that runs an agent, team or workflow;
// fingerprint tells whether a new snapshot changed what clients see of it.
type runnerTool struct {
	fingerprint string
}

// callerKey keeps the caller in the go-sdk's token info, which reaches
// every tool call of the request.
const callerKey = "troupe.caller"

// caller is who sent an /mcp request, as the API's middleware saw it.
type caller struct {
	p auth.Principal
	// admit reserves the caller's concurrent runs for a run a tool call
	// starts, or refuses it.
	admit func() (*ratelimit.Admission, error)
}

// New returns a Server serving the engine's current snapshot. Run keeps its
// tools in step with reloads.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger, tools: map[string]runnerTool{}}
	s.mcp = sdk.NewServer(&sdk.Implementation{Name: "troupe", Title: "Troupe", Version: opts.Version}, &sdk.ServerOptions{
		Instructions: "Each tool but the operator tools (list_sessions, get_session_runs, continue_run, cancel_run) runs a Troupe agent, team or workflow and answers with its result. Pass session_id (from a result's _meta) to continue a conversation.",
		Capabilities: &sdk.ServerCapabilities{Tools: &sdk.ToolCapabilities{ListChanged: true}},
		Logger:       opts.Logger,
	})
	s.addOperatorTools()
	s.Sync(opts.Engine.Current())
	// Troupe's own host check has run before a request gets here, with the
	// names the operator allowed: the SDK's loopback-only check would refuse
	// those behind a proxy.
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.mcp },
		&sdk.StreamableHTTPOptions{Logger: opts.Logger, DisableLocalhostProtection: true})
	// The SDK hands tool handlers nothing of the HTTP request but its
	// headers and its token info: the caller goes there. It also ties each
	// MCP session to the key that opened it (the token's UserID), so
	// another key cannot use a session id it learned.
	s.handler = sdkauth.RequireBearerToken(func(ctx context.Context, _ string, r *http.Request) (*sdkauth.TokenInfo, error) {
		c, ok := r.Context().Value(callerCtx{}).(*caller)
		if !ok || opts.Keys.Len() > 0 && c.p.Key() == nil {
			return nil, sdkauth.ErrInvalidToken
		}
		ti := &sdkauth.TokenInfo{Extra: map[string]any{callerKey: c}}
		if k := c.p.Key(); k != nil {
			ti.UserID = "key:" + k.Name
		}
		return ti, nil
	}, &sdkauth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h) // API keys do not expire
	return s
}

// Routes document /mcp in the API's OpenAPI document: the streamable HTTP
// transport's three methods, whose bodies are MCP's JSON-RPC messages.
func Routes() []api.Route {
	errs := map[int]string{http.StatusNotFound: "No MCP session has the Mcp-Session-Id sent: initialize a new one",
		http.StatusForbidden: "The key lacks agents:read, or the Mcp-Session-Id belongs to another key's session"}
	return []api.Route{
		{Method: "post", Path: "/mcp", Tag: "MCP", Summary: "Send MCP messages",
			Desc: "The Model Context Protocol over streamable HTTP: JSON-RPC requests (initialize, tools/list, tools/call …) answered as JSON or server-sent events. Every agent, team and workflow is a tool; list_sessions, get_session_runs, continue_run and cancel_run are operator tools. Running a tool needs agents:run.",
			Body: map[string]any{}, Resp: map[string]any{}, Streams: true, Errors: errs},
		{Method: "get", Path: "/mcp", Tag: "MCP", Summary: "Listen for MCP notifications",
			Desc: "The session's event stream (Mcp-Session-Id): notifications/tools/list_changed when a reload changes the tools.", Streams: true, Errors: errs},
		{Method: "delete", Path: "/mcp", Tag: "MCP", Summary: "End an MCP session", Desc: "Ends the session named by Mcp-Session-Id.", Errors: errs},
	}
}

// callerCtx carries the caller from the gin request to the SDK's token
// check.
type callerCtx struct{}

// Handle serves /mcp after the API's authentication middleware (auth.Bearer
// and the rate limits) has let the request through.
func (s *Server) Handle(c *gin.Context) {
	post := c.Request.Method == http.MethodPost
	if !s.enter(post) {
		c.Header("Retry-After", "1")
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"detail": "the server is shutting down: reconnect to another replica"})
		return
	}
	if post {
		defer s.leave()
	}
	s.Sync(s.opts.Engine.Current())
	who := &caller{p: auth.Of(c), admit: func() (*ratelimit.Admission, error) { return s.opts.Limits.AdmitRun(c) }}
	r := c.Request.WithContext(context.WithValue(c.Request.Context(), callerCtx{}, who))
	if r.Header.Get("Authorization") == "" {
		// Keys sent as X-API-Key are as good as a bearer token here; an
		// open server needs none, but the SDK's token check wants one.
		r.Header = r.Header.Clone()
		r.Header.Set("Authorization", "Bearer "+cmp.Or(r.Header.Get("X-API-Key"), "open"))
	}
	s.handler.ServeHTTP(c.Writer, r)
}

// Run keeps the tool set in step with the engine's snapshots until ctx is
// cancelled. Then, once the messages in progress have been answered (a
// tool call is when its run ends, which the server's drain lets finish or
// cancels at its timeout), it closes the MCP sessions, whose event streams
// would otherwise hold the server's shutdown until its timeout, and
// refuses new requests (503).
func (s *Server) Run(ctx context.Context) error {
	snaps, stop := s.opts.Engine.Subscribe()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			s.waitIdle()
			for ss := range s.mcp.Sessions() {
				_ = ss.Close()
			}
			return nil
		case snap := <-snaps:
			s.Sync(snap)
		}
	}
}

// enter and leave count a message (POST) in progress; enter refuses any
// request once the sessions are closed. Event streams (GET) are not
// counted: they last as long as their session.
func (s *Server) enter(count bool) bool {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	if s.closed {
		return false
	}
	if count {
		s.calls++
	}
	return true
}

func (s *Server) leave() {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	if s.calls--; s.calls == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// waitIdle returns when no message is in progress; from then on, enter
// refuses.
func (s *Server) waitIdle() {
	for {
		s.callsMu.Lock()
		if s.calls == 0 {
			s.closed = true
			s.callsMu.Unlock()
			return
		}
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		idle := s.idle
		s.callsMu.Unlock()
		<-idle
	}
}

// Sync makes the runner tools those of snap: tools of new objects are
// added, changed ones replaced, gone ones removed. The SDK tells connected
// clients (one notifications/tools/list_changed for changes close together).
// An older snapshot than the one served changes nothing.
func (s *Server) Sync(snap *engine.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.built && snap.Generation() <= s.gen {
		return
	}
	want := s.runnerTools(snap)
	var gone []string
	for name := range s.tools {
		if _, ok := want[name]; !ok {
			gone = append(gone, name)
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		s.mcp.RemoveTools(gone...)
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		t := want[name]
		if old, ok := s.tools[name]; ok && old.fingerprint == t.fingerprint {
			continue
		}
		s.mcp.AddTool(t.tool, s.runHandler(t.kind, t.target))
	}
	s.tools = map[string]runnerTool{}
	for name, t := range want {
		s.tools[name] = runnerTool{fingerprint: t.fingerprint}
	}
	s.gen, s.built = snap.Generation(), true
}

// wantedTool is a runner tool as a snapshot describes it.
type wantedTool struct {
	kind        spec.Kind
	target      string
	tool        *sdk.Tool
	fingerprint string
}

// operatorTools are the names of the operator tools, which objects' tools
// must not take.
var operatorTools = []string{"list_sessions", "get_session_runs", "continue_run", "cancel_run"}

// ToolName is the tool name of the object kind/name in snap (see the
// package comment).
func ToolName(snap *engine.Snapshot, kind spec.Kind, name string) string {
	taken := slices.Contains(operatorTools, name)
	switch kind {
	case spec.KindAgent:
		if taken {
			return "agent." + name
		}
	case spec.KindTeam:
		if _, ok := snap.Agent(name); ok || taken {
			return "team." + name
		}
	case spec.KindWorkflow:
		_, agent := snap.Agent(name)
		_, team := snap.Team(name)
		if agent || team || taken {
			return "workflow." + name
		}
	}
	return name
}

// messageSchema is the input of agents, teams and workflows without an
// input schema.
func messageSchema(withSession bool) map[string]any {
	props := map[string]any{"message": map[string]any{"type": "string", "description": "The input message"}}
	if withSession {
		props["session_id"] = map[string]any{"type": "string", "description": "Continue this session (its history applies); a new session when empty. Results name their session in _meta."}
	}
	return map[string]any{"type": "object", "properties": props, "required": []any{"message"}}
}

func (s *Server) runnerTools(snap *engine.Snapshot) map[string]wantedTool {
	out := map[string]wantedTool{}
	add := func(kind spec.Kind, name, desc string, in, outSchema map[string]any) {
		if desc == "" {
			desc = fmt.Sprintf("Runs the %s %s.", kind.Lower(), name)
		}
		t := &sdk.Tool{Name: ToolName(snap, kind, name), Title: name, Description: desc, InputSchema: in}
		if outSchema != nil {
			t.OutputSchema = outSchema
		}
		fp, _ := json.Marshal(t)
		out[t.Name] = wantedTool{kind: kind, target: name, tool: t, fingerprint: string(fp)}
	}
	for _, a := range snap.Agents() {
		add(spec.KindAgent, a.Name(), a.Spec.Description, messageSchema(true), nil)
	}
	for _, t := range snap.Teams() {
		add(spec.KindTeam, t.Name(), t.Spec.Description, messageSchema(true), nil)
	}
	for _, w := range snap.Workflows() {
		in := messageSchema(false)
		if len(w.Spec.Input) > 0 {
			in = api.WorkflowInputSchema(w.Spec)
		}
		if in["type"] != "object" {
			s.log.Warn("workflow not served over MCP: its input schema is not an object", "workflow", w.Name())
			continue
		}
		var outSchema map[string]any
		// MCP wants an object output schema; other outputs answer as text.
		if os := w.Spec.Output.Schema; os != nil && os["type"] == "object" {
			outSchema = maps.Clone(map[string]any(os))
		}
		add(spec.KindWorkflow, w.Name(), w.Spec.Description, in, outSchema)
	}
	return out
}

// caller returns who sent a tool call: the key the request came with, or
// anyone when the server runs open.
func (s *Server) caller(req *sdk.CallToolRequest) (*caller, error) {
	if ti := req.Extra; ti != nil && ti.TokenInfo != nil {
		if c, ok := ti.TokenInfo.Extra[callerKey].(*caller); ok {
			return c, nil
		}
	}
	return nil, errors.New("missing API key: send Authorization: Bearer <key>")
}

// fail is a tool result that reports an error to the model or user.
func fail(format string, args ...any) *sdk.CallToolResult {
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// runHandler runs kind/name for each call, through the run service.
func (s *Server) runHandler(kind spec.Kind, name string) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		who, err := s.caller(req)
		if err != nil {
			return fail("%v", err), nil
		}
		p := who.p
		if !p.Has(auth.ScopeAgentsRun) {
			return fail("this API key lacks the %s scope: use a key with it to run %s %s", auth.ScopeAgentsRun, kind.Lower(), name), nil
		}
		var args map[string]any
		if raw := req.Params.Arguments; len(raw) > 0 {
			if err := json.Unmarshal(raw, &args); err != nil {
				return fail("the arguments must be a JSON object: %v", err), nil
			}
		}
		msg, err := s.message(kind, name, args)
		if err != nil {
			return fail("%v", err), nil
		}
		params := session.Params{Kind: kind, Name: name, Message: msg, UserID: p.UserID(""), BoundUser: p.Bound()}
		if kind != spec.KindWorkflow {
			params.SessionID, _ = args["session_id"].(string)
		}
		token := req.Params.GetProgressToken()
		params.Stream = token != nil
		// Rate limits: the request was counted by the middleware; the
		// caller's concurrent runs are checked per run, as on run routes.
		adm, err := who.admit()
		if err != nil {
			return fail("%v", err), nil
		}
		turn, err := s.opts.Runs.Start(ctx, params)
		if err != nil {
			adm.Release()
			_, msg, _ := api.Status(err)
			return fail("%s", msg), nil
		}
		adm.Bind(turn.RunID())
		var progress float64
		run := turn.Execute(ctx, func(e event.Event) {
			// The target's own answer streams as progress; members and
			// tools are internal to the run.
			if token == nil || e.Depth != 0 || e.Type != event.RunContent || e.Content == "" {
				return
			}
			progress++
			_ = req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: token, Progress: progress, Message: e.Content})
		})
		return s.result(ctx, req, kind, run), nil
	}
}

// message is the run's input: the message argument, or a workflow's input
// object (checked against its schema) as JSON.
func (s *Server) message(kind spec.Kind, name string, args map[string]any) (string, error) {
	if kind == spec.KindWorkflow {
		if w, ok := s.opts.Engine.Current().Workflow(name); ok && len(w.Spec.Input) > 0 {
			in, err := w.CheckInput(args)
			if err != nil {
				return "", err
			}
			b, err := json.Marshal(in)
			if err != nil {
				return "", fmt.Errorf("input: %w", err)
			}
			return string(b), nil
		}
	}
	msg, _ := args["message"].(string)
	if strings.TrimSpace(msg) == "" {
		return "", errors.New("message is required")
	}
	return msg, nil
}

// result turns a finished run into the tool's answer: its content as text
// (and, for a workflow with an object output schema, as structured
// content); a failed run is an error result with its message; a paused one
// says what it waits on and how to go on.
func (s *Server) result(ctx context.Context, req *sdk.CallToolRequest, kind spec.Kind, run *session.Run) *sdk.CallToolResult {
	meta := sdk.Meta{"troupe/run_id": run.ID, "troupe/session_id": run.SessionID, "troupe/status": string(run.Status)}
	switch run.Status {
	case event.StatusCompleted:
		res := &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: run.Content}}, Meta: meta}
		if kind == spec.KindWorkflow && s.hasOutputSchema(req.Params.Name) {
			// The run has checked its output against the schema.
			var out map[string]any
			if err := json.Unmarshal([]byte(run.Content), &out); err == nil {
				res.StructuredContent = out
			}
		}
		return res
	case event.StatusPaused:
		text := fmt.Sprintf("run %s is paused: it waits on a decision. Decide with continue_run {run_id: %q, ...} (tools with confirmed for an agent or team, approved for a workflow) or in the approvals inbox; cancel_run ends it.", run.ID, run.ID)
		res := &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}, Meta: meta}
		// What it waits on is what GET …/runs/{run_id} says: the held
		// tool calls, or the workflow's approval step.
		if body, status, err := s.callAPI(ctx, req, http.MethodGet, "/"+run.Type+"s/"+url.PathEscape(run.ComponentID)+"/runs/"+url.PathEscape(run.ID), nil); err == nil && status == http.StatusOK {
			res.Content = append(res.Content, &sdk.TextContent{Text: string(body)})
		}
		if s.hasOutputSchema(req.Params.Name) {
			// Clients check structured content against the output
			// schema on every result that is not an error.
			res.IsError = true
		}
		return res
	}
	msg := run.Error
	if msg == "" {
		msg = "the run ended " + strings.ToLower(string(run.Status))
	}
	res := fail("the run failed: %s", msg)
	res.Meta = meta
	return res
}

func (s *Server) hasOutputSchema(tool string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.tools[tool].fingerprint, `"outputSchema"`)
}

// callAPI calls a route of the REST API in process, as the tool call's
// caller (its key), and returns the answer's body and status.
func (s *Server) callAPI(ctx context.Context, req *sdk.CallToolRequest, method, path string, body any) ([]byte, int, error) {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, fmt.Errorf("encoding the request to %s: %w", path, err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	r, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("calling %s: %w", path, err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if req.Extra != nil {
		for _, h := range []string{"Authorization", "X-API-Key"} {
			if v := req.Extra.Header.Get(h); v != "" {
				r.Header.Set(h, v)
			}
		}
	}
	w := httptest.NewRecorder()
	s.opts.API.ServeHTTP(w, r)
	return w.Body.Bytes(), w.Code, nil
}

// apiResult answers an operator tool with the API's answer: its JSON as
// text and structured content, or its error's detail as an error result.
func (s *Server) apiResult(ctx context.Context, req *sdk.CallToolRequest, method, path string, body any) (*sdk.CallToolResult, error) {
	out, status, err := s.callAPI(ctx, req, method, path, body)
	if err != nil {
		return nil, err
	}
	if status >= 400 {
		var e struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(out, &e) == nil && e.Detail != "" {
			return fail("%s", e.Detail), nil
		}
		return fail("%s %s answered %d: %s", method, path, status, out), nil
	}
	res := &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: string(out)}}}
	var structured any
	if json.Unmarshal(out, &structured) == nil {
		if m, ok := structured.(map[string]any); ok {
			res.StructuredContent = m
		} else {
			// Structured content is an object: lists are wrapped.
			res.StructuredContent = map[string]any{"data": structured}
		}
	}
	return res, nil
}

// operatorArgs are the operator tools' arguments, each reading its own.
type operatorArgs struct {
	SessionID   string                `json:"session_id"`
	RunID       string                `json:"run_id"`
	Type        string                `json:"type"`
	ComponentID string                `json:"component_id"`
	Page        int                   `json:"page"`
	Limit       int                   `json:"limit"`
	Tools       []event.ToolExecution `json:"tools"`
	Approved    *bool                 `json:"approved"`
	Comment     string                `json:"comment"`
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }

func object(props map[string]any, required ...string) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		r := make([]any, len(required))
		for i, s := range required {
			r[i] = s
		}
		o["required"] = r
	}
	return o
}

func (s *Server) addOperatorTools() {
	op := func(name, desc string, in map[string]any, route func(ctx context.Context, req *sdk.CallToolRequest, a operatorArgs) (*sdk.CallToolResult, error)) {
		s.mcp.AddTool(&sdk.Tool{Name: name, Description: desc, InputSchema: in}, func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			var a operatorArgs
			if raw := req.Params.Arguments; len(raw) > 0 {
				if err := json.Unmarshal(raw, &a); err != nil {
					return fail("the arguments do not match the tool's input schema: %v", err), nil
				}
			}
			if _, err := s.caller(req); err != nil {
				return fail("%v", err), nil
			}
			return route(ctx, req, a)
		})
	}
	op("list_sessions", "Lists the caller's sessions, newest first (GET /sessions): a bound API key sees only its user's.",
		object(map[string]any{
			"type":         str("agent, team or workflow: only sessions of that kind"),
			"component_id": str("Only sessions of this agent, team or workflow"),
			"page":         map[string]any{"type": "integer", "minimum": 1},
			"limit":        map[string]any{"type": "integer", "minimum": 1},
		}),
		func(ctx context.Context, req *sdk.CallToolRequest, a operatorArgs) (*sdk.CallToolResult, error) {
			q := url.Values{}
			for k, v := range map[string]string{"type": a.Type, "component_id": a.ComponentID} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if a.Page > 0 {
				q.Set("page", strconv.Itoa(a.Page))
			}
			if a.Limit > 0 {
				q.Set("limit", strconv.Itoa(a.Limit))
			}
			path := "/sessions"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			return s.apiResult(ctx, req, http.MethodGet, path, nil)
		})
	op("get_session_runs", "Reads a session's runs: inputs, answers, tool calls and statuses (GET /sessions/{id}/runs).",
		object(map[string]any{"session_id": str("The session")}, "session_id"),
		func(ctx context.Context, req *sdk.CallToolRequest, a operatorArgs) (*sdk.CallToolResult, error) {
			if a.SessionID == "" {
				return fail("session_id is required"), nil
			}
			return s.apiResult(ctx, req, http.MethodGet, "/sessions/"+url.PathEscape(a.SessionID)+"/runs", nil)
		})
	op("continue_run", "Continues a PAUSED run with decisions, as POST …/runs/{run_id}/continue: for an agent or team, tools are its paused tool calls with confirmed true or false (and confirmation_note); for a workflow, approved and comment decide its approval step.",
		object(map[string]any{
			"run_id": str("The paused run"),
			"tools": map[string]any{"type": "array", "description": "The paused tool calls (tool_call_id, confirmed, confirmation_note) of an agent or team run",
				"items": map[string]any{"type": "object"}},
			"approved": map[string]any{"type": "boolean", "description": "A workflow's decision: true continues it, false rejects it"},
			"comment":  str("A workflow decision's comment"),
		}, "run_id"),
		func(ctx context.Context, req *sdk.CallToolRequest, a operatorArgs) (*sdk.CallToolResult, error) {
			r, res := s.findRun(ctx, req, a.RunID)
			if res != nil {
				return res, nil
			}
			path := "/" + r.Type + "s/" + url.PathEscape(r.ComponentID) + "/runs/" + url.PathEscape(r.ID) + "/continue"
			var body any = map[string]any{"tools": a.Tools, "stream": false}
			if r.Type == session.TypeWorkflow {
				body = map[string]any{"approved": a.Approved, "comment": a.Comment}
			}
			return s.apiResult(ctx, req, http.MethodPost, path, body)
		})
	op("cancel_run", "Cancels a run in progress or a paused one (POST …/runs/{run_id}/cancel).",
		object(map[string]any{"run_id": str("The run")}, "run_id"),
		func(ctx context.Context, req *sdk.CallToolRequest, a operatorArgs) (*sdk.CallToolResult, error) {
			r, res := s.findRun(ctx, req, a.RunID)
			if res != nil {
				return res, nil
			}
			return s.apiResult(ctx, req, http.MethodPost, "/"+r.Type+"s/"+url.PathEscape(r.ComponentID)+"/runs/"+url.PathEscape(r.ID)+"/cancel", nil)
		})
}

// findRun returns the run an operator tool names, if its caller may see
// it; else the result refusing the call.
func (s *Server) findRun(ctx context.Context, req *sdk.CallToolRequest, id string) (*store.Run, *sdk.CallToolResult) {
	if id == "" {
		return nil, fail("run_id is required")
	}
	who, err := s.caller(req)
	if err != nil {
		return nil, fail("%v", err)
	}
	r, err := s.opts.Store.GetRun(ctx, id, store.Filter{UserID: who.p.UserID("")})
	if err != nil {
		_, msg, _ := api.Status(err)
		if errors.Is(err, store.ErrNotFound) {
			msg = "no run " + id + ": list_sessions and get_session_runs name the runs you may see"
		}
		return nil, fail("%s", msg)
	}
	return r, nil
}
