// Package team runs several agents (or teams) under a leader model:
//
//   - route: the leader picks exactly one member through a tool call; that
//     member's answer is the team's answer, streamed as it is written.
//   - coordinate: the leader is an agent loop whose tool delegates tasks to
//     members (several, possibly in parallel); it reads their answers and
//     writes the final one.
//   - broadcast: every member answers the task in parallel; the leader
//     synthesizes their answers.
//
// Member events stream inside the team's stream, tagged with the member's name
// and depth, so a client can show who is doing what at any nesting level.
package team

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// Tool names the leader uses. The echo model recognizes them to lead teams
// offline; keep them in sync with engine/model/echo.
const (
	RouteTool    = "route_to_member"
	DelegateTool = "delegate_task_to_member"
)

// Config is everything a team needs, resolved by the engine's compiler.
type Config struct {
	Spec     *spec.Team
	Provider model.Provider
	Model    string // leader's primary model id, for events
	Vendor   string
	Members  []agent.Runner
	Now      func() time.Time
	// Guardrails check the team's input and final answer; nil runs none.
	Guardrails agent.Guardrails
	// Budgets are the team's budgets; they also govern its members' runs.
	Budgets budget.Policy
	// Reasoner, ReasonerModel and ReasonerVendor are the leader's planning
	// model (reasoning.model), as agent.Config's.
	Reasoner       model.Provider
	ReasonerModel  string
	ReasonerVendor string
	// Summarizer writes the session summaries of summary (nil when off),
	// SummarizerModel its vendor model id and SummarizerVendor its
	// provider; the summary job calls it, never a run.
	Summarizer       model.Provider
	SummarizerModel  string
	SummarizerVendor string
	// LearningModel distils the team's runs into insights (learning.model,
	// or the leader's model); nil without learning. LearningModelID is its
	// vendor model id.
	LearningModel   model.Provider
	LearningModelID string
	// MemoryModel extracts the memories of the team's runs (memory.model,
	// or the leader's model); nil unless memory extracts. MemoryModelID
	// is its vendor model id.
	MemoryModel   model.Provider
	MemoryModelID string
	// LeaderTools are tools of the leader besides delegation (the memory
	// tools of memory: agentic), in coordinate and broadcast modes.
	LeaderTools []tool.Tool
	// Secrets are kept out of the conversations traces record, as
	// agent.Config's.
	Secrets []string
}

// Team is a run-ready team. Immutable and safe for concurrent runs.
type Team struct {
	cfg     Config
	members map[string]agent.Runner
	names   []string
	leader  *agent.Agent
}

var _ agent.Runner = (*Team)(nil)

// New builds a team and its leader.
func New(cfg Config) (*Team, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Team{cfg: cfg, members: map[string]agent.Runner{}}
	for _, m := range cfg.Members {
		t.members[m.Name()] = m
		t.names = append(t.names, m.Name())
	}
	if len(t.names) == 0 {
		return nil, fmt.Errorf("team %s has no members", cfg.Spec.Name)
	}
	leaderSpec := &spec.Agent{
		Meta:         spec.Meta{Kind: spec.KindAgent, Name: cfg.Spec.Name, Description: cfg.Spec.Description},
		Model:        cfg.Spec.Model,
		Instructions: t.leaderInstructions(),
		Limits:       cfg.Spec.Limits,
		Reasoning:    cfg.Spec.Reasoning,
		SessionState: cfg.Spec.SessionState,
		Trace:        cfg.Spec.Trace,
	}
	var tools []tool.Tool
	if cfg.Spec.Mode == spec.ModeCoordinate {
		tools = append(tools, &delegate{team: t})
	}
	if cfg.Spec.Mode != spec.ModeRoute {
		tools = append(tools, cfg.LeaderTools...)
	}
	leader, err := agent.New(agent.Config{Spec: leaderSpec, Provider: cfg.Provider, Model: cfg.Model, Vendor: cfg.Vendor, Tools: tools, Now: cfg.Now,
		Reasoner: cfg.Reasoner, ReasonerModel: cfg.ReasonerModel, ReasonerVendor: cfg.ReasonerVendor, Secrets: cfg.Secrets})
	if err != nil {
		return nil, fmt.Errorf("team %s leader: %w", cfg.Spec.Name, err)
	}
	t.leader = leader
	return t, nil
}

// Name returns the team's name.
func (t *Team) Name() string { return t.cfg.Spec.Name }

// Description returns the team's description.
func (t *Team) Description() string { return t.cfg.Spec.Description }

// Learning returns the team's learning (nil without one), and LearningModel
// the model that distils its runs and its model id.
func (t *Team) Learning() *spec.Learning { return t.cfg.Spec.Learning }

// LearningModel returns the model that distils the team's runs into
// insights and its model id; nil without learning.
func (t *Team) LearningModel() (model.Provider, string) {
	return t.cfg.LearningModel, t.cfg.LearningModelID
}

// Memory returns the team's memory (nil without one).
func (t *Team) Memory() *spec.Memory { return t.cfg.Spec.Memory }

// MemoryModel returns the model that extracts memories from the team's
// runs and its vendor model id (nil unless memory extracts).
func (t *Team) MemoryModel() (model.Provider, string) { return t.cfg.MemoryModel, t.cfg.MemoryModelID }

// Spec returns the team's definition.
func (t *Team) Spec() *spec.Team { return t.cfg.Spec }

// Members returns the member names in order.
func (t *Team) Members() []string { return t.names }

// ModelInfo returns the leader's primary model and its provider.
func (t *Team) ModelInfo() (modelID, provider string) { return t.cfg.Model, t.cfg.Vendor }

// HistoryRuns returns the spec's history: how many earlier team turns of the
// session the team reads.
func (t *Team) HistoryRuns() int { return t.cfg.Spec.HistoryRuns() }

// SummaryModel returns the model that writes the session's summaries,
// its vendor model id and provider (nil when summary is off).
func (t *Team) SummaryModel() (model.Provider, string, string) {
	return t.cfg.Summarizer, t.cfg.SummarizerModel, t.cfg.SummarizerVendor
}

// SummarySpec returns the spec's summary and the leader's model, its
// default summarizer.
func (t *Team) SummarySpec() (*spec.Summary, string) { return t.cfg.Spec.Summary, t.cfg.Spec.Model }

// BudgetPolicy is the budgets the runner's runs count against, for the
// background work that follows them (summaries, memories, learnings).
func (t *Team) BudgetPolicy() budget.Policy { return t.cfg.Budgets }

// HistoryTokens returns the spec's history_tokens.
func (t *Team) HistoryTokens() int { return t.cfg.Spec.HistoryTokens }

func (t *Team) roster() string {
	var b strings.Builder
	for _, n := range t.names {
		fmt.Fprintf(&b, "- %s", n)
		if d := t.members[n].Description(); d != "" {
			fmt.Fprintf(&b, ": %s", d)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (t *Team) leaderInstructions() string {
	var parts []string
	if s := strings.TrimSpace(t.cfg.Spec.Instructions); s != "" {
		parts = append(parts, s)
	}
	switch t.cfg.Spec.Mode {
	case spec.ModeRoute:
		parts = append(parts, "You lead a team. Pick the one member best suited to the user's message and call "+RouteTool+" with its name and the task. Members:\n"+t.roster())
	case spec.ModeCoordinate:
		parts = append(parts, "You lead a team. Delegate tasks to members with "+DelegateTool+" (you may delegate several tasks at once), read their answers, then write the final answer yourself. Members:\n"+t.roster())
	case spec.ModeBroadcast:
		parts = append(parts, "You lead a team. Every member has answered the user's message; write one answer that combines the best of their answers.")
	}
	return strings.Join(parts, "\n\n")
}

func (t *Team) memberSchema() map[string]any {
	names := make([]any, len(t.names))
	for i, n := range t.names {
		names[i] = n
	}
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"member": map[string]any{"type": "string", "enum": names, "description": "The member's name."},
			"task":   map[string]any{"type": "string", "description": "What the member should do, with all the context it needs."},
		},
		"required": []any{"member", "task"},
	}
}

// teamRun is the state of one team run, reachable from the delegate tool
// through the context.
type teamRun struct {
	t      *Team
	in     agent.Input
	emit   func(event.Event)
	emitMu sync.Mutex
	seq    atomic.Int64

	mu           sync.Mutex
	members      []*agent.Result
	interactions []model.Message // member tasks and answers, for sharing
	// held are the members that paused, by member run id, and delegations
	// the coordinate leader's calls they hold, by call id.
	held        map[string]*agent.Resume
	delegations map[string]delegation
}

type runKey struct{}

func (r *teamRun) send(e event.Event) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.emit(e)
}

// own rewrites the leader's events as the team's own.
func (r *teamRun) own(e event.Event) event.Event {
	e.TeamID, e.AgentID = r.t.Name(), ""
	return e
}

func (r *teamRun) event(typ event.Type) event.Event {
	return event.Event{Type: typ, RunID: r.in.RunID, SessionID: r.in.SessionID, TeamID: r.t.Name(), CreatedAt: r.t.cfg.Now()}
}

// runMember runs one member, forwarding its events tagged with its name and a
// depth one deeper. mirror, when set, also streams the member's answer as the
// team's own content (route mode).
func (r *teamRun) runMember(ctx context.Context, name, task string, mirror bool) *agent.Result {
	return r.runMemberAs(ctx, name, task, fmt.Sprintf("%s-%s-%d", r.in.RunID, name, r.seq.Add(1)), nil, mirror)
}

// runMemberAs runs member name as run runID, continuing it from resume
// when set. A member that pauses is recorded in r.held, its pending calls
// tagged with its name.
func (r *teamRun) runMemberAs(ctx context.Context, name, task, runID string, resume *agent.Resume, mirror bool) *agent.Result {
	m := r.t.members[name]
	in := agent.Input{
		Message:   task,
		RunID:     runID,
		SessionID: r.in.SessionID,
		UserID:    r.in.UserID,
		Stream:    r.in.Stream,
		Resume:    resume,
	}
	if r.t.cfg.Spec.Mode != spec.ModeCoordinate {
		// A routed member answers the user in the team's place and a
		// broadcast member answers the user's message itself, so both see
		// the conversation; a coordinate member gets a self-contained task.
		in.History = slices.Clone(r.in.History)
		if task == r.in.Message {
			// The member answers the user's own message: with its images.
			in.Images = r.in.Images
		}
	}
	if r.t.cfg.Spec.ShareMemberInteractions {
		r.mu.Lock()
		in.History = append(in.History, r.interactions...)
		r.mu.Unlock()
	}
	res := m.Execute(ctx, in, func(e event.Event) {
		if mirror && e.Depth == 0 && e.Type == event.RunContent {
			own := r.event(event.RunContent)
			own.Content = e.Content
			r.send(own)
		}
		if e.Member == "" {
			e.Member = name
		}
		e.Depth++
		r.send(e)
	})
	r.mu.Lock()
	r.members = append(r.members, res)
	if res.Status == event.StatusPaused {
		for i := range res.Pending {
			res.Pending[i].Exec.Member = memberPath(name, res.Pending[i].Exec.Member)
		}
		if r.held == nil {
			r.held = map[string]*agent.Resume{}
		}
		held := res.Held
		if held == nil {
			held = &agent.Resume{Messages: res.Messages, Tools: res.Tools, Metrics: res.Metrics}
		}
		r.held[runID] = held
		r.mu.Unlock()
		return res
	}
	answer := res.Content
	if res.Status != event.StatusCompleted {
		answer = fmt.Sprintf("(%s did not answer: %v)", name, res.Err)
	}
	r.interactions = append(r.interactions,
		model.Message{Role: model.RoleUser, Content: fmt.Sprintf("[task for %s] %s", name, task)},
		model.Message{Role: model.RoleAssistant, Content: fmt.Sprintf("[%s] %s", name, answer)})
	r.mu.Unlock()
	return res
}

// Execute implements agent.Runner.
func (t *Team) Execute(ctx context.Context, in agent.Input, emit func(event.Event)) *agent.Result {
	if t.cfg.Guardrails != nil {
		return t.cfg.Guardrails.Run(ctx, in, emit, t.execute)
	}
	return t.execute(ctx, in, emit)
}

func (t *Team) execute(ctx context.Context, in agent.Input, emit func(event.Event)) *agent.Result {
	in.History = conversation(in.History)
	r := &teamRun{t: t, in: in, emit: emit}
	ctx = context.WithValue(ctx, runKey{}, r)
	ctx, changedState := agent.ShareState(ctx, in.State)
	ctx, tracker, err := budget.Open(ctx, t.cfg.Budgets, budget.Subject{RunID: in.RunID, SessionID: in.SessionID, UserID: in.UserID, Runner: t.Name()})
	if err != nil {
		started := r.event(event.RunStarted)
		started.Model, started.Provider = t.cfg.Model, t.cfg.Vendor
		r.send(started)
		res := r.finish(ctx, t.cfg.Now(), event.Metrics{}, "", err, "budget")
		res.Runner, res.Input = t.Name(), in.Message
		return res
	}
	defer func() { _ = tracker.Close(ctx) }() // best effort: the run has ended either way
	var res *agent.Result
	switch {
	case in.Resume != nil:
		res = r.resume(ctx)
	case t.cfg.Spec.Mode == spec.ModeRoute:
		res = r.route(ctx)
	case t.cfg.Spec.Mode == spec.ModeBroadcast:
		res = r.broadcast(ctx)
	default:
		res = r.coordinate(ctx, in)
	}
	res.Runner, res.Input = t.Name(), in.Message
	res.State = changedState()
	r.mu.Lock()
	res.Members = r.members
	for _, m := range r.members {
		res.References = append(res.References, m.References...)
		res.Metrics.InputTokens += m.Metrics.InputTokens
		res.Metrics.OutputTokens += m.Metrics.OutputTokens
		res.Metrics.ModelRequests += m.Metrics.ModelRequests
		// A team's run costs what its members' runs cost, plus the leader.
		res.Metrics.Cost += m.Metrics.Cost
		res.Metrics.CostUnknown = res.Metrics.CostUnknown || m.Metrics.CostUnknown
	}
	res.Metrics.TotalTokens = res.Metrics.InputTokens + res.Metrics.OutputTokens
	r.mu.Unlock()
	return res
}

// route asks the leader for one member, then runs it as the team's answer.
func (r *teamRun) route(ctx context.Context) *agent.Result {
	t := r.t
	start := t.cfg.Now()
	started := r.event(event.RunStarted)
	started.Model, started.Provider = t.cfg.Model, t.cfg.Vendor
	r.send(started)
	req := &model.Request{
		System:   joinSystem(t.leader.Spec().Instructions, r.in.Summary, r.in.Memories),
		Messages: append(append([]model.Message(nil), r.in.History...), model.Message{Role: model.RoleUser, Content: r.in.Message, Images: r.in.Images}),
		Tools:    []model.ToolDef{{Name: RouteTool, Description: "Send the user's message to the one member best suited to answer it.", Parameters: t.memberSchema()}},
	}
	var metrics event.Metrics
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		if err := budget.Check(ctx); err != nil {
			be := r.event(event.BudgetExceeded)
			be.Budget, be.Content = agent.BudgetEvent(err), err.Error()
			r.send(be)
			return r.finish(ctx, start, metrics, "", err, budget.ErrorKind)
		}
		reqStart := t.cfg.Now()
		resp, err := t.cfg.Provider.Generate(ctx, req, nil)
		if err != nil {
			return r.finish(ctx, start, metrics, "", err, string(model.KindOf(err)))
		}
		if err := budget.Record(ctx, budget.OfResponse(resp)); err != nil {
			return r.finish(ctx, start, metrics, "", err, "budget")
		}
		metrics.AddUsage(resp.Usage)
		metrics.AddCost(resp)
		metrics.ModelRequests++
		done := r.event(event.ModelRequestCompleted)
		m := event.Metrics{Duration: t.cfg.Now().Sub(reqStart), ModelRequests: 1}
		m.AddUsage(resp.Usage)
		m.AddCost(resp)
		done.Model, done.Provider, done.Metrics = resp.Model, t.cfg.Vendor, &m
		done.Exchange = t.leader.Exchange(req, resp)
		r.send(done)
		if len(resp.ToolCalls) == 0 {
			// The leader answered itself rather than routing.
			c := r.event(event.RunContent)
			c.Content = resp.Content
			r.send(c)
			return r.finish(ctx, start, metrics, resp.Content, nil, "")
		}
		call := resp.ToolCalls[0]
		var args struct{ Member, Task string }
		if err := json.Unmarshal([]byte(call.Arguments), &args); err != nil || t.members[args.Member] == nil {
			lastErr = fmt.Errorf("the leader routed to %q, which is not a member (members: %s)", args.Member, strings.Join(t.names, ", "))
			req.Messages = append(req.Messages,
				model.Message{Role: model.RoleAssistant, ToolCalls: resp.ToolCalls},
				model.Message{Role: model.RoleTool, ToolCallID: call.ID, Name: call.Name, IsError: true, Content: "Error: " + lastErr.Error()})
			continue
		}
		task := args.Task
		if strings.TrimSpace(task) == "" {
			task = r.in.Message
		}
		rec := event.ToolCall{ID: call.ID, Name: call.Name, Args: map[string]any{"member": args.Member, "task": task}, StartedAt: t.cfg.Now()}
		ev := r.event(event.ToolCallStarted)
		// Consumers keep events: the started one must not change with rec.
		started := rec
		ev.Tool = &started
		r.send(ev)
		runID := fmt.Sprintf("%s-%s-%d", r.in.RunID, args.Member, r.seq.Add(1))
		res := r.runMemberAs(ctx, args.Member, task, runID, nil, true)
		if res.Status == event.StatusPaused {
			return r.pause(start, metrics, teamState{Mode: spec.ModeRoute, Member: args.Member, Task: task, MemberRun: runID, Call: &rec}, res.Pending)
		}
		return r.routed(ctx, start, metrics, args.Member, rec, res)
	}
	return r.finish(ctx, start, metrics, "", lastErr, "team")
}

// routed ends a route run with the routed member's result.
func (r *teamRun) routed(ctx context.Context, start time.Time, metrics event.Metrics, member string, rec event.ToolCall, res *agent.Result) *agent.Result {
	rec.Duration, rec.Result, rec.Error = r.t.cfg.Now().Sub(rec.StartedAt), res.Content, res.Status != event.StatusCompleted
	ev := r.event(event.ToolCallCompleted)
	if rec.Error {
		ev.Type, rec.Result = event.ToolCallError, fmt.Sprint(res.Err)
	}
	final := rec
	ev.Tool = &final
	r.send(ev)
	if res.Status != event.StatusCompleted {
		return r.finish(ctx, start, metrics, "", fmt.Errorf("member %s: %w", member, res.Err), res.ErrorKind, rec)
	}
	return r.finish(ctx, start, metrics, res.Content, nil, "", rec)
}

// broadcast runs every member in parallel, then lets the leader synthesize.
func (r *teamRun) broadcast(ctx context.Context) *agent.Result {
	t := r.t
	start := t.cfg.Now()
	started := r.event(event.RunStarted)
	started.Model, started.Provider = t.cfg.Model, t.cfg.Vendor
	r.send(started)
	results := make([]*agent.Result, len(t.names))
	runIDs := make([]string, len(t.names))
	var wg sync.WaitGroup
	for i, name := range t.names {
		runIDs[i] = fmt.Sprintf("%s-%s-%d", r.in.RunID, name, r.seq.Add(1))
		wg.Go(func() { results[i] = r.runMemberAs(ctx, name, r.in.Message, runIDs[i], nil, false) })
	}
	wg.Wait()
	return r.synthesize(ctx, start, results, runIDs)
}

// synthesize lets the leader write a broadcast run's answer from its
// members' results, or pauses the run when a member paused.
func (r *teamRun) synthesize(ctx context.Context, start time.Time, results []*agent.Result, runIDs []string) *agent.Result {
	t := r.t
	if ctx.Err() != nil {
		return r.finish(ctx, start, event.Metrics{}, "", ctx.Err(), "")
	}
	st := teamState{Mode: spec.ModeBroadcast, Answers: map[string]string{}, Runs: map[string]string{}}
	var pending []approval.Need
	for i, name := range t.names {
		switch res := results[i]; {
		case res.Status == event.StatusPaused:
			st.Runs[name] = runIDs[i]
			pending = append(pending, res.Pending...)
		case res.Status == event.StatusCompleted:
			st.Answers[name] = res.Content
		default:
			st.Answers[name] = fmt.Sprintf("(no answer: %v)", res.Err)
		}
	}
	if len(pending) > 0 {
		return r.pause(start, event.Metrics{}, st, pending)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The user's message:\n%s\n\nYour team's answers:\n", r.in.Message)
	for _, name := range t.names {
		fmt.Fprintf(&b, "\n## %s\n%s\n", name, st.Answers[name])
	}
	b.WriteString("\nWrite the final answer for the user.")
	in := r.in
	in.Message, in.Resume = b.String(), nil // a continued team's leader starts afresh
	res := t.leader.Execute(ctx, in, func(e event.Event) {
		if e.Type == event.RunStarted {
			return // the team already started
		}
		if e.Type.Terminal() && e.Metrics != nil {
			// The team's run spans the members' work, not only the leader's.
			m := *e.Metrics
			m.Duration = t.cfg.Now().Sub(start)
			e.Metrics = &m
		}
		r.send(r.own(e))
	})
	res.Metrics.Duration = t.cfg.Now().Sub(start)
	res.Continued = r.in.Resume != nil // the team's run, not its leader's
	if res.Status == event.StatusCompleted {
		// The team's turn is the user's message and its answer, as in route
		// mode; the synthesis prompt is the leader's working, and would
		// otherwise come back as the user's words in later turns' history.
		res.Messages = []model.Message{{Role: model.RoleUser, Content: r.in.Message}, {Role: model.RoleAssistant, Content: res.Content}}
	}
	return res
}

// finish ends a route or broadcast run with its terminal event.
func (r *teamRun) finish(ctx context.Context, start time.Time, m event.Metrics, content string, err error, kind string, tools ...event.ToolCall) *agent.Result {
	m.Duration = r.t.cfg.Now().Sub(start)
	m.ToolCalls = len(tools)
	// Continued: a continued team member's run was stored when it paused,
	// and is updated, not inserted again.
	res := &agent.Result{RunID: r.in.RunID, Content: content, Tools: tools, Metrics: m, Model: r.t.cfg.Model, Provider: r.t.cfg.Vendor,
		Continued: r.in.Resume != nil}
	e := r.event(event.RunCompleted)
	switch {
	case err == nil:
		res.Status = event.StatusCompleted
		res.Messages = []model.Message{{Role: model.RoleUser, Content: r.in.Message}, {Role: model.RoleAssistant, Content: content}}
		e.Content, e.Tools = content, slices.Clone(tools)
	case ctx.Err() != nil && errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		res.Status, res.Err = event.StatusCancelled, context.Canceled
		e.Type, e.Content = event.RunCancelled, "run cancelled"
	default:
		res.Status, res.Err, res.ErrorKind = event.StatusError, err, kind
		e.Type, e.Content, e.ErrorKind = event.RunError, err.Error(), kind
	}
	metrics := res.Metrics
	e.Metrics = &metrics
	r.send(e)
	return res
}

// delegate is the coordinate leader's tool: it runs a member on a task.
type delegate struct{ team *Team }

var _ tool.Tool = (*delegate)(nil)

func (d *delegate) Def() model.ToolDef {
	return model.ToolDef{Name: DelegateTool, Description: "Give a task to one member of your team and get its answer. Call it several times at once to work in parallel.", Parameters: d.team.memberSchema()}
}

func (d *delegate) Call(ctx context.Context, raw json.RawMessage) (string, error) {
	r, ok := ctx.Value(runKey{}).(*teamRun)
	if !ok {
		return "", errors.New("delegation is only possible inside a team run")
	}
	var args struct{ Member, Task string }
	if err := tool.Decode(raw, &args); err != nil {
		return "", err
	}
	if d.team.members[args.Member] == nil {
		return "", tool.ArgumentError("%q is not a member; members: %s", args.Member, strings.Join(d.team.names, ", "))
	}
	if strings.TrimSpace(args.Task) == "" {
		return "", tool.ArgumentError("task must not be empty")
	}
	runID := fmt.Sprintf("%s-%s-%d", r.in.RunID, args.Member, r.seq.Add(1))
	res := r.runMemberAs(ctx, args.Member, args.Task, runID, nil, false)
	if res.Status == event.StatusPaused {
		// The leader holds this call until the member continues.
		r.delegate(agent.CallID(ctx), delegation{Member: args.Member, Task: args.Task, MemberRun: runID})
		return "", &agent.HeldError{Pending: res.Pending}
	}
	return delegationAnswer(args.Member, res)
}

// delegationAnswer is a member's answer to a delegated task, as the
// delegate tool returns it.
func delegationAnswer(member string, res *agent.Result) (string, error) {
	if res.Status != event.StatusCompleted {
		return "", fmt.Errorf("%s could not complete the task: %v", member, res.Err)
	}
	return res.Content, nil
}

// conversation keeps the user's messages and the answers of earlier team
// turns: a coordinate leader's stored run also holds its delegations (tool
// calls and their results), which are the team's working, not the
// conversation. Dropping every call with every result never splits a pair.
func conversation(h []model.Message) []model.Message {
	if len(h) == 0 {
		return nil
	}
	out := make([]model.Message, 0, len(h))
	for _, m := range h {
		if m.Role == model.RoleUser || m.Role == model.RoleAssistant && len(m.ToolCalls) == 0 && m.Content != "" {
			out = append(out, m)
		}
	}
	return out
}

// joinSystem is the route leader's instructions followed by the session's
// summary section and the user's memories, when there are.
func joinSystem(instructions string, sections ...string) string {
	parts := make([]string, 0, 1+len(sections))
	for _, s := range append([]string{instructions}, sections...) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "\n\n")
}
