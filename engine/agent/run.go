package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
)

// run is the state of one turn.
type run struct {
	refs    tool.References
	a       *Agent
	in      Input
	emit    func(event.Event)
	emitMu  sync.Mutex
	start   time.Time
	metrics event.Metrics
	tools   []event.ToolCall
	firstAt time.Time // first content delta
	// budgeted is set when ctx carries budgets (the agent's or an enclosing
	// team's or workflow's), so the unbudgeted loop skips even the lookups.
	budgeted bool
}

func (r *run) event(t event.Type) event.Event {
	return event.Event{Type: t, RunID: r.in.RunID, SessionID: r.in.SessionID, AgentID: r.a.name, CreatedAt: r.a.cfg.Now()}
}

func (r *run) send(e event.Event) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.emit(e)
}

func (r *run) execute(parent context.Context) *Result {
	lim := r.a.cfg.Spec.Limits
	ctx, cancel := context.WithTimeoutCause(parent, lim.Timeout.D(), errRunTimeout)
	defer cancel()
	ctx = tool.WithReferences(ctx, &r.refs)

	started := r.event(event.RunStarted)
	started.Model, started.Provider = r.a.cfg.Model, r.a.cfg.Vendor
	r.send(started)

	ctx, tracker, err := budget.Open(ctx, r.a.cfg.Budgets, budget.Subject{RunID: r.in.RunID, SessionID: r.in.SessionID, UserID: r.in.UserID, Runner: r.a.name})
	if err != nil {
		return r.fail(ctx, err, "budget", nil)
	}
	defer func() { _ = tracker.Close(ctx) }() // best effort: the run has ended either way
	r.budgeted = budget.Tracking(ctx)

	defs, byName, err := r.gatherTools(ctx)
	if err != nil {
		return r.fail(ctx, err, "tool", nil)
	}
	msgs := make([]model.Message, 0, len(r.in.History)+4)
	msgs = append(msgs, r.in.History...)
	turnStart := len(msgs)
	msgs = append(msgs, model.Message{Role: model.RoleUser, Content: r.in.Message})

	req := &model.Request{
		System:      r.systemPrompt(),
		Tools:       defs,
		Temperature: r.a.cfg.Spec.Temperature,
		MaxTokens:   r.a.cfg.Spec.MaxTokens,
	}
	if r.a.schema != nil {
		req.OutputSchema, req.OutputSchemaName = r.a.cfg.Spec.OutputSchema, "answer"
	}
	schemaRetried := false
	for turn := 0; ; turn++ {
		if turn >= lim.MaxModelTurns {
			return r.fail(ctx, fmt.Errorf("%w: the run made %d model requests without finishing (limits.max_model_turns)", ErrToolLimit, turn), "limit", msgs[turnStart:])
		}
		req.Messages = msgs
		if r.budgeted {
			if err := budget.Check(ctx); err != nil {
				return r.exceeded(ctx, err, msgs[turnStart:])
			}
		}
		resp, err := r.callModel(ctx, req)
		if err != nil {
			return r.fail(ctx, err, string(model.KindOf(err)), msgs[turnStart:])
		}
		if r.budgeted {
			if err := budget.Record(ctx, budget.OfResponse(resp)); err != nil {
				return r.fail(ctx, err, "budget", msgs[turnStart:])
			}
		}
		msgs = append(msgs, model.Message{Role: model.RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls})

		if len(resp.ToolCalls) == 0 {
			if r.a.schema != nil {
				if verr := r.validateOutput(resp.Content); verr != nil {
					if schemaRetried {
						return r.fail(ctx, fmt.Errorf("the answer does not match output_schema after a retry: %w", verr), "output_schema", msgs[turnStart:])
					}
					schemaRetried = true
					msgs = append(msgs, model.Message{Role: model.RoleUser, Content: fmt.Sprintf(
						"Your answer does not match the required JSON Schema: %v\nAnswer again with only a JSON object that matches the schema.", verr)})
					continue
				}
			}
			return r.complete(resp.Content, msgs[turnStart:])
		}
		if r.metrics.ToolCalls+len(resp.ToolCalls) > lim.MaxToolCalls {
			return r.fail(ctx, fmt.Errorf("%w: the model asked for more than %d tool calls in one run (limits.max_tool_calls)", ErrToolLimit, lim.MaxToolCalls), "limit", msgs[turnStart:])
		}
		results := r.runTools(ctx, resp.ToolCalls, byName)
		if ctx.Err() != nil {
			return r.fail(ctx, context.Cause(ctx), "", msgs[turnStart:])
		}
		if r.budgeted {
			if err := budget.Record(ctx, budget.Usage{ToolCalls: int64(len(resp.ToolCalls))}); err != nil {
				return r.fail(ctx, err, "budget", msgs[turnStart:])
			}
		}
		msgs = append(msgs, results...)
	}
}

var errRunTimeout = errors.New("run timeout")

// gatherTools lists the static tools and those of toolsets, starting toolsets
// (MCP servers) on first use.
func (r *run) gatherTools(ctx context.Context) ([]model.ToolDef, map[string]tool.Tool, error) {
	if len(r.a.cfg.Toolsets) == 0 {
		return r.a.defs, r.a.byName, nil
	}
	defs := slices.Clone(r.a.defs)
	byName := make(map[string]tool.Tool, len(r.a.byName))
	for k, v := range r.a.byName {
		byName[k] = v
	}
	for _, ts := range r.a.cfg.Toolsets {
		tools, err := ts.Tools(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("starting toolset: %w", err)
		}
		for _, t := range tools {
			d := t.Def()
			if _, dup := byName[d.Name]; dup {
				continue
			}
			defs = append(defs, d)
			byName[d.Name] = t
		}
	}
	return defs, byName, nil
}

func (r *run) systemPrompt() string {
	if !r.a.cfg.Spec.AddDate {
		return r.a.system
	}
	date := "The current date and time is " + r.a.cfg.Now().UTC().Format("Monday, 2 January 2006 15:04 MST") + "."
	if r.a.system == "" {
		return date
	}
	return r.a.system + "\n\n" + date
}

func (r *run) callModel(ctx context.Context, req *model.Request) (*model.Response, error) {
	reqStart := r.a.cfg.Now()
	var first time.Time
	var onDelta func(model.Delta)
	if r.in.Stream {
		onDelta = func(d model.Delta) {
			if d.Content == "" {
				return
			}
			if first.IsZero() {
				first = r.a.cfg.Now()
				if r.firstAt.IsZero() {
					r.firstAt = first
				}
			}
			e := r.event(event.RunContent)
			e.Content = d.Content
			r.send(e)
		}
	}
	resp, err := r.a.cfg.Provider.Generate(ctx, req, onDelta)
	m := event.Metrics{Duration: r.a.cfg.Now().Sub(reqStart), ModelRequests: 1}
	if !first.IsZero() {
		m.TimeToFirstToken = first.Sub(reqStart)
	}
	r.metrics.ModelRequests++
	if err != nil {
		return nil, err
	}
	m.AddUsage(resp.Usage)
	m.AddCost(resp)
	r.metrics.AddUsage(resp.Usage)
	r.metrics.AddCost(resp)
	if !r.in.Stream && resp.Content != "" && len(resp.ToolCalls) == 0 {
		if r.firstAt.IsZero() {
			r.firstAt = r.a.cfg.Now()
		}
		e := r.event(event.RunContent)
		e.Content = resp.Content
		r.send(e)
	}
	done := r.event(event.ModelRequestCompleted)
	done.Model, done.Provider, done.Metrics = resp.Model, r.a.cfg.Vendor, &m
	if done.Model == "" {
		done.Model = r.a.cfg.Model
	}
	r.send(done)
	return resp, nil
}

// runTools runs one turn's tool calls concurrently and returns their results in
// the order the model asked for them.
func (r *run) runTools(ctx context.Context, calls []model.ToolCall, byName map[string]tool.Tool) []model.Message {
	results := make([]model.Message, len(calls))
	records := make([]event.ToolCall, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		rec := event.ToolCall{ID: c.ID, Name: c.Name, Args: marshalArgs(c.Arguments), StartedAt: r.a.cfg.Now()}
		e := r.event(event.ToolCallStarted)
		// Consumers keep events (a stream's journal encodes them later), so
		// an event must not share the record this call goes on to fill in.
		started := rec
		e.Tool = &started
		r.send(e)
		wg.Go(func() {
			out, err := r.callTool(ctx, c, byName[c.Name], byName)
			rec.Duration = r.a.cfg.Now().Sub(rec.StartedAt)
			msg := model.Message{Role: model.RoleTool, ToolCallID: c.ID, Name: c.Name}
			done := r.event(event.ToolCallCompleted)
			// The single point every tool result passes through: upstreams
			// echo the credentials they were sent, and from here the text
			// reaches the model, events, the stored run and traces.
			if err != nil {
				text := r.a.redact.Redact(err.Error())
				rec.Error, rec.Result = true, text
				msg.IsError, msg.Content = true, "Error: "+text
				done.Type = event.ToolCallError
			} else {
				rec.Result = tool.Truncate(r.a.redact.Redact(out), r.a.cfg.Spec.Limits.MaxToolResult)
				msg.Content = rec.Result
			}
			final := rec
			done.Tool = &final
			r.send(done)
			results[i], records[i] = msg, rec
		})
	}
	wg.Wait()
	r.metrics.ToolCalls += len(calls)
	r.tools = append(r.tools, records...)
	return results
}

// callTool runs one tool with its own timeout, turning panics into errors so a
// broken tool never takes down the run.
func (r *run) callTool(ctx context.Context, c model.ToolCall, t tool.Tool, byName map[string]tool.Tool) (out string, err error) {
	if t == nil {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		slices.Sort(names)
		return "", fmt.Errorf("no tool named %q; available tools: %s", c.Name, strings.Join(names, ", "))
	}
	args, ok := model.ValidArguments(c.Arguments)
	if !ok {
		return "", fmt.Errorf("%w: arguments are not a JSON object: %.200s", tool.ErrInvalidArguments, c.Arguments)
	}
	timeout := r.a.cfg.Spec.Limits.ToolTimeout.D()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tool %s failed unexpectedly (panic: %v)", c.Name, p)
		}
	}()
	out, err = t.Call(tctx, json.RawMessage(args))
	if err != nil && tctx.Err() != nil && ctx.Err() == nil {
		return "", fmt.Errorf("tool %s timed out after %s (limits.tool_timeout)", c.Name, timeout)
	}
	return out, err
}

func (r *run) validateOutput(content string) error {
	var v any
	if err := json.Unmarshal([]byte(strings.TrimSpace(stripFence(content))), &v); err != nil {
		return fmt.Errorf("the answer is not valid JSON: %w", err)
	}
	if err := r.a.schema.Validate(v); err != nil {
		return errors.New(firstLine(err.Error()))
	}
	return nil
}

// stripFence removes a ```json fence some models wrap JSON answers in.
func stripFence(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "```") {
		return s
	}
	t = strings.TrimPrefix(t, "```")
	t = strings.TrimPrefix(t, "json")
	return strings.TrimSuffix(strings.TrimSpace(t), "```")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (r *run) finalMetrics() event.Metrics {
	m := r.metrics
	m.Duration = r.a.cfg.Now().Sub(r.start)
	if !r.firstAt.IsZero() {
		m.TimeToFirstToken = r.firstAt.Sub(r.start)
	}
	return m
}

func (r *run) result(status event.Status, content string, msgs []model.Message) *Result {
	return &Result{
		RunID: r.in.RunID, Input: r.in.Message, Runner: r.a.name, Status: status, Content: content, Tools: r.tools, Metrics: r.finalMetrics(),
		Model: r.a.cfg.Model, Provider: r.a.cfg.Vendor, Messages: slices.Clone(msgs), References: r.refs.List(),
	}
}

func (r *run) complete(content string, msgs []model.Message) *Result {
	res := r.result(event.StatusCompleted, content, msgs)
	e := r.event(event.RunCompleted)
	e.Content, e.Metrics, e.References, e.Tools = content, &res.Metrics, res.References, slices.Clone(res.Tools)
	r.send(e)
	return res
}

// exceeded ends the run refused by a budget: a BudgetExceeded event naming it,
// then the RunError.
func (r *run) exceeded(ctx context.Context, err error, msgs []model.Message) *Result {
	if e := BudgetEvent(err); e != nil {
		be := r.event(event.BudgetExceeded)
		be.Budget, be.Content = e, err.Error()
		r.send(be)
	}
	return r.fail(ctx, err, budget.ErrorKind, msgs)
}

// BudgetEvent describes a budget refusal for a BudgetExceeded event; nil
// when err is not one.
func BudgetEvent(err error) *event.Budget {
	var be *budget.ExceededError
	if !errors.As(err, &be) {
		return nil
	}
	return &event.Budget{Name: be.Budget, Scope: be.Key.Scope, Window: be.Key.Window, Limit: be.Limit, Max: be.Max, Used: be.Used}
}

// fail ends the run with an error, or as cancelled when the caller cancelled.
func (r *run) fail(ctx context.Context, err error, kind string, msgs []model.Message) *Result {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errRunTimeout):
		err, kind = fmt.Errorf("the run exceeded its %s limit (limits.timeout)", r.a.cfg.Spec.Limits.Timeout), "timeout"
	case ctx.Err() != nil:
		res := r.result(event.StatusCancelled, "", msgs)
		res.Err = context.Canceled
		e := r.event(event.RunCancelled)
		e.Content, e.Metrics = "run cancelled", &res.Metrics
		r.send(e)
		return res
	}
	err = r.a.redact.Error(err) // a toolset's start error may quote its server
	res := r.result(event.StatusError, "", msgs)
	res.Err, res.ErrorKind = err, kind
	e := r.event(event.RunError)
	e.Content, e.ErrorKind, e.Metrics = err.Error(), kind, &res.Metrics
	r.send(e)
	return res
}
