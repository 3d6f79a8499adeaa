package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/approval"
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
	// state is the session state the run's tools read and write, when the
	// agent has session_state.
	state *runState
	// budgeted is set when ctx carries budgets (the agent's or an enclosing
	// team's or workflow's), so the unbudgeted loop skips even the lookups.
	budgeted bool
	// thoughts are the run's reasoning steps; reasoning is set once
	// ReasoningStarted was sent, reasoned once ReasoningCompleted was.
	thoughts            []event.Thought
	reasoning, reasoned bool
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
	ctx = tool.WithRun(ctx, tool.Run{RunID: r.in.RunID, SessionID: r.in.SessionID, UserID: r.in.UserID, Agent: r.a.name})

	rs := r.in.Resume
	started := r.event(event.RunStarted)
	if rs != nil {
		// The decisions the run continues with, for clients and traces.
		started.Type, started.Paused = event.RunContinued, slices.Clone(rs.Decided)
	}
	started.Model, started.Provider = r.a.cfg.Model, r.a.cfg.Vendor
	r.send(started)

	ctx, tracker, err := budget.Open(ctx, r.a.cfg.Budgets, budget.Subject{RunID: r.in.RunID, SessionID: r.in.SessionID, UserID: r.in.UserID, Runner: r.a.name})
	if err != nil {
		return r.fail(ctx, err, "budget", nil)
	}
	defer func() { _ = tracker.Close(ctx) }() // best effort: the run has ended either way
	r.budgeted = budget.Tracking(ctx)

	defs, byName, gates, err := r.gatherTools(ctx)
	if err != nil {
		return r.fail(ctx, err, "tool", nil)
	}
	defs, byName = r.withStateTools(defs, byName)
	msgs := make([]model.Message, 0, len(r.in.History)+4)
	msgs = append(msgs, r.in.History...)
	turnStart := len(msgs)
	if rs == nil {
		msgs = append(msgs, model.Message{Role: model.RoleUser, Content: r.in.Message, Images: r.in.Images})
	} else {
		// The held calls run now, with their decisions, and the loop goes
		// on from the model's next turn.
		msgs = append(msgs, rs.Messages...)
		r.tools, r.metrics = slices.Clone(rs.Tools), rs.Metrics
		r.thoughts = slices.Clone(rs.Thoughts)
		r.reasoning = len(r.thoughts) > 0
		if n := len(msgs); n > turnStart && msgs[n-1].Role == model.RoleAssistant && len(msgs[n-1].ToolCalls) > 0 {
			decided := map[string]event.ToolExecution{}
			for _, d := range rs.Decided {
				decided[d.ToolCallID] = d
			}
			done := map[string]model.Message{}
			for _, m := range rs.Done {
				done[m.ToolCallID] = m
			}
			results, held := r.runTools(ctx, msgs[n-1].ToolCalls, byName, decided, done)
			if ctx.Err() != nil {
				return r.fail(ctx, context.Cause(ctx), "", msgs[turnStart:])
			}
			if err := r.recordToolCalls(ctx, len(msgs[n-1].ToolCalls)-len(done)-len(held)); err != nil {
				return r.fail(ctx, err, "budget", msgs[turnStart:])
			}
			if len(held) > 0 {
				return r.hold(held, results, msgs[turnStart:])
			}
			msgs = append(msgs, results...)
		}
	}

	req := &model.Request{
		System:      r.systemPrompt(),
		Tools:       defs,
		Temperature: r.a.cfg.Spec.Temperature,
		MaxTokens:   r.a.cfg.Spec.MaxTokens,
	}
	if r.a.schema != nil {
		req.OutputSchema, req.OutputSchemaName = r.a.cfg.Spec.OutputSchema, "answer"
	}
	if reason := r.a.cfg.Spec.Reasoning; reason != nil {
		if reason.Native {
			req.ReasoningBudget = reason.Budget()
		}
		// A planning pass runs once per run, before the first answer: a
		// continued run already answered with its plan.
		if r.a.cfg.Reasoner != nil && rs == nil {
			steps, err := r.plan(ctx, msgs)
			if err != nil {
				if BudgetEvent(err) != nil {
					return r.exceeded(ctx, err, msgs[turnStart:])
				}
				return r.fail(ctx, err, string(model.KindOf(err)), msgs[turnStart:])
			}
			if len(steps) > 0 {
				req.System = strings.TrimSpace(req.System + "\n\n" + planContext(steps))
			}
		}
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
		msgs = append(msgs, model.Message{Role: model.RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls,
			Reasoning: resp.Reasoning, ReasoningSignature: resp.ReasoningSignature})

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
		if needs := r.check(ctx, resp.ToolCalls, gates); len(needs) > 0 {
			return r.pause(needs, msgs[turnStart:])
		}
		results, held := r.runTools(ctx, resp.ToolCalls, byName, nil, nil)
		if ctx.Err() != nil {
			return r.fail(ctx, context.Cause(ctx), "", msgs[turnStart:])
		}
		// Held calls (a member's paused delegation) are counted when they
		// run, after the run continues.
		if err := r.recordToolCalls(ctx, len(resp.ToolCalls)-len(held)); err != nil {
			return r.fail(ctx, err, "budget", msgs[turnStart:])
		}
		if len(held) > 0 {
			return r.hold(held, results, msgs[turnStart:])
		}
		r.thinkCalls(resp.ToolCalls, results)
		msgs = append(msgs, results...)
	}
}

var errRunTimeout = errors.New("run timeout")

// recordToolCalls adds n executed tool calls to the run's budgets.
func (r *run) recordToolCalls(ctx context.Context, n int) error {
	if !r.budgeted || n <= 0 {
		return nil
	}
	return budget.Record(ctx, budget.Usage{ToolCalls: int64(n)})
}

// gatherTools lists the static tools and those of toolsets, starting toolsets
// (MCP servers) on first use, with the gates of each by name.
func (r *run) gatherTools(ctx context.Context) ([]model.ToolDef, map[string]tool.Tool, map[string]*approval.Gate, error) {
	if len(r.a.cfg.Toolsets) == 0 {
		return r.a.defs, r.a.byName, r.a.cfg.Gates, nil
	}
	defs := slices.Clone(r.a.defs)
	byName := make(map[string]tool.Tool, len(r.a.byName))
	for k, v := range r.a.byName {
		byName[k] = v
	}
	gates := maps.Clone(r.a.cfg.Gates)
	for i, ts := range r.a.cfg.Toolsets {
		tools, err := ts.Tools(ctx)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("starting toolset: %w", err)
		}
		for _, t := range tools {
			d := t.Def()
			if _, dup := byName[d.Name]; dup {
				continue
			}
			defs = append(defs, d)
			byName[d.Name] = t
			if i < len(r.a.cfg.ToolsetGates) && r.a.cfg.ToolsetGates[i] != nil {
				if gates == nil {
					gates = map[string]*approval.Gate{}
				}
				gates[d.Name] = r.a.cfg.ToolsetGates[i]
			}
		}
	}
	return defs, byName, gates, nil
}

// check returns the calls of one model turn that need a decision before
// they run. When any does, the whole turn is held, the calls that need
// nothing included: they run with the others once the run continues, so a
// rejected call never sees its siblings' side effects half-done, and the
// turn's results reach the model together, as they always do.
func (r *run) check(ctx context.Context, calls []model.ToolCall, gates map[string]*approval.Gate) []approval.Need {
	if len(gates) == 0 {
		return nil
	}
	var needs []approval.Need
	for _, c := range calls {
		g := gates[c.Name]
		if g == nil {
			continue
		}
		n, err := g.Check(ctx, approval.Call{ID: c.ID, Tool: c.Name, Args: marshalArgs(c.Arguments), Agent: r.a.name, User: r.in.UserID})
		if err != nil || n == nil {
			continue
		}
		if n.Exec.RequiresConfirmation {
			n.Exec.ApprovalID = approval.NewID()
		}
		needs = append(needs, *n)
	}
	return needs
}

// pause ends the run PAUSED on needs, with the turn's messages so far (the
// assistant's held tool calls last) for the run to continue from.
func (r *run) pause(needs []approval.Need, msgs []model.Message) *Result {
	return r.pauseWith(needs, msgs, nil)
}

// hold pauses the run on calls whose own work paused (held), keeping the
// results of the turn's other calls for when it continues.
func (r *run) hold(held map[int]*HeldError, results []model.Message, msgs []model.Message) *Result {
	var needs []approval.Need
	var done []model.Message
	for i, m := range results {
		if h, ok := held[i]; ok {
			needs = append(needs, h.Pending...)
			continue
		}
		done = append(done, m)
	}
	return r.pauseWith(needs, msgs, done)
}

func (r *run) pauseWith(needs []approval.Need, msgs []model.Message, done []model.Message) *Result {
	res := r.result(event.StatusPaused, "", msgs)
	res.Pending = needs
	res.Held = &Resume{Messages: slices.Clone(msgs), Tools: slices.Clone(r.tools), Metrics: r.metrics, Done: done, Thoughts: slices.Clone(r.thoughts)}
	e := r.event(event.RunPaused)
	e.Metrics = &res.Metrics
	e.Content = fmt.Sprintf("the run is paused: %d tool call(s) need a decision", len(needs))
	for _, n := range needs {
		e.Paused = append(e.Paused, n.Exec)
	}
	r.send(e)
	return res
}

// decide applies a decision to a held call: the call to run (edited
// arguments, user input filled in), or the result it gets without running
// (rejected, or executed by the client).
func decide(c model.ToolCall, d event.ToolExecution) (model.ToolCall, *string) {
	switch {
	case d.RequiresConfirmation && d.Confirmed != nil && !*d.Confirmed:
		out := "The tool call was rejected by the approver; it did not run."
		if d.ConfirmationNote != "" {
			out += " Their comment: " + d.ConfirmationNote
		}
		return c, &out
	case d.ExternalExecutionRequired && d.Result != nil:
		return c, d.Result
	}
	args := d.ToolArgs
	if len(d.UserInputSchema) > 0 {
		args = maps.Clone(args)
		if args == nil {
			args = map[string]any{}
		}
		for _, f := range d.UserInputSchema {
			args[f.Name] = f.Value
		}
	}
	if args != nil {
		if b, err := json.Marshal(args); err == nil {
			c.Arguments = string(b)
		}
	}
	return c, nil
}

func (r *run) systemPrompt() string {
	parts := make([]string, 0, 4)
	if r.a.system != "" {
		parts = append(parts, r.a.system)
	}
	if r.a.cfg.Spec.AddDate {
		parts = append(parts, "The current date and time is "+r.a.cfg.Now().UTC().Format("Monday, 2 January 2006 15:04 MST")+".")
	}
	if r.state != nil {
		parts = append(parts, "The session state (JSON; read it with get_state, change it with set_state):\n"+r.state.stateJSON())
	}
	if r.in.Summary != "" {
		parts = append(parts, r.in.Summary)
	}
	if r.in.Memories != "" {
		parts = append(parts, r.in.Memories)
	}
	return strings.Join(parts, "\n\n")
}

func (r *run) callModel(ctx context.Context, req *model.Request) (*model.Response, error) {
	reqStart := r.a.cfg.Now()
	var first time.Time
	var onDelta func(model.Delta)
	if r.in.Stream {
		onDelta = func(d model.Delta) {
			if d.Reasoning != "" {
				// Native reasoning streams live; it is also kept whole as
				// a step once the answer is complete.
				r.thoughtsStarted()
				e := r.event(event.ReasoningContentDelta)
				e.ReasoningContent = d.Reasoning
				r.send(e)
			}
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
	if resp.Reasoning != "" {
		r.thought(event.Thought{Title: "Reasoning", Reasoning: resp.Reasoning, NextAction: "continue", Source: event.ReasoningNative})
	}
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
	done.Exchange = r.a.Exchange(req, resp)
	r.send(done)
	return resp, nil
}

// runTools runs one turn's tool calls concurrently and returns their results in
// the order the model asked for them.
//
// A call whose tool returns a *HeldError (its work paused) has no result:
// it is returned in held, by index, and left out of the run's tools. Calls
// in done ran before the run paused: their results are reused as they are.
func (r *run) runTools(ctx context.Context, calls []model.ToolCall, byName map[string]tool.Tool, decided map[string]event.ToolExecution, done map[string]model.Message) ([]model.Message, map[int]*HeldError) {
	results := make([]model.Message, len(calls))
	records := make([]*event.ToolCall, len(calls))
	var heldMu sync.Mutex
	var held map[int]*HeldError
	var wg sync.WaitGroup
	ran := 0
	for i, c := range calls {
		if m, ok := done[c.ID]; ok {
			results[i] = m
			continue
		}
		ran++
		var given *string
		if d, ok := decided[c.ID]; ok {
			c, given = decide(c, d)
		}
		rec := event.ToolCall{ID: c.ID, Name: c.Name, Args: marshalArgs(c.Arguments), StartedAt: r.a.cfg.Now()}
		e := r.event(event.ToolCallStarted)
		// Consumers keep events (a stream's journal encodes them later), so
		// an event must not share the record this call goes on to fill in.
		started := rec
		e.Tool = &started
		r.send(e)
		wg.Go(func() {
			var out string
			var err error
			if given != nil {
				out = *given
			} else {
				out, err = r.callTool(ctx, c, byName[c.Name], byName)
			}
			if h, ok := errors.AsType[*HeldError](err); ok {
				heldMu.Lock()
				if held == nil {
					held = map[int]*HeldError{}
				}
				held[i] = h
				heldMu.Unlock()
				return
			}
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
			results[i], records[i] = msg, &rec
		})
	}
	wg.Wait()
	r.metrics.ToolCalls += ran - len(held)
	for _, rec := range records {
		if rec != nil {
			r.tools = append(r.tools, *rec)
		}
	}
	return results, held
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
	out, err = t.Call(context.WithValue(tctx, callIDKey{}, c.ID), json.RawMessage(args))
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
		Continued: r.in.Resume != nil, State: r.changedState(), ReasoningSteps: slices.Clone(r.thoughts),
	}
}

// changedState is the session state to save with the run: nil unless the
// run's tools changed it.
func (r *run) changedState() map[string]any {
	if r.state == nil {
		return nil
	}
	st, changed := r.state.snapshot()
	if !changed {
		return nil
	}
	if st == nil {
		st = map[string]any{}
	}
	return st
}

func (r *run) complete(content string, msgs []model.Message) *Result {
	r.thoughtsCompleted()
	res := r.result(event.StatusCompleted, content, msgs)
	e := r.event(event.RunCompleted)
	e.Content, e.Metrics, e.References, e.Tools = content, &res.Metrics, res.References, slices.Clone(res.Tools)
	e.ReasoningSteps = slices.Clone(res.ReasoningSteps)
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
