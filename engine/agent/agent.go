// Package agent is the agent loop: it assembles a model's context (instructions,
// date, session history, knowledge hint, tools), calls the model, runs the tools
// it asks for concurrently, feeds the results back, and stops at the answer or at
// a limit, emitting typed events all the way.
//
// An Agent is built once per snapshot and shared by every run on it; each run's
// state lives on its own stack, so starting a run costs almost nothing.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// Runner is anything that can answer a message: an agent or a team.
type Runner interface {
	Name() string
	Description() string
	// ModelInfo returns the primary model id and its provider (a team's
	// leader's), recorded on runs and traces before any request is made.
	ModelInfo() (modelID, provider string)
	// HistoryRuns is how many earlier completed runs of the session the
	// runner reads as context (the spec's history; zero for none). A runner
	// may also bound them by tokens with HistoryTokens() int, which the
	// session service discovers by type assertion.
	HistoryRuns() int
	// Execute runs one turn, calling emit for each event (from any goroutine,
	// never concurrently), and returns the outcome. The last event emitted is
	// the terminal one matching Result.Status.
	Execute(ctx context.Context, in Input, emit func(event.Event)) *Result
}

// Input is one turn of a conversation.
type Input struct {
	Message string
	// Images are sent with Message to the model (see model.Message.Images).
	Images    []model.Image
	History   []model.Message // earlier turns of the session, oldest first
	RunID     string
	SessionID string
	UserID    string
	// Stream asks the model to stream, so RunContent events carry deltas as
	// they arrive. Without it the answer arrives in one RunContent event.
	Stream bool
	// State is the session's key-value state (workflows, and agents with
	// session_state, read and write it). The runner must not modify it.
	State map[string]any
	// Summary is the session's summary as a delimited section of the
	// instructions (session.SummaryPrompt), empty when it has none; History
	// then holds only the runs after it.
	Summary string
	// Memories are the user's memories recalled for this run as a
	// delimited section of the instructions (session.MemoryPrompt), empty
	// without a user, without memory, or when none is recalled.
	Memories string
	// Resume, when set, continues a run that paused on tool calls, instead
	// of answering Message afresh.
	Resume *Resume
}

// Resume is the stored state of a paused run and the decisions taken since.
type Resume struct {
	// Messages are the turn's messages when it paused: the user's message
	// first, the assistant's message with the held tool calls last.
	Messages []model.Message  `json:"messages"`
	Tools    []event.ToolCall `json:"tools,omitempty"`
	Metrics  event.Metrics    `json:"metrics"`
	// Thoughts are the run's reasoning steps when it paused.
	Thoughts []event.Thought `json:"reasoning_steps,omitempty"`
	// Decided are the paused calls with their decisions (confirmed,
	// tool_args, user input values, result); calls of the assistant's last
	// message that are not here needed no decision and run as asked.
	Decided []event.ToolExecution `json:"-"`
	// Done are the results of the held turn's calls that had run when the
	// run paused (beside a call whose own work paused: a team member's).
	Done []model.Message `json:"done,omitempty"`
	// Team is a team's own state when it paused; Members the held state of
	// its members that paused, by member run id.
	Team    json.RawMessage    `json:"team,omitempty"`
	Members map[string]*Resume `json:"members,omitempty"`
}

// HeldError is what a tool returns when its work paused rather than
// finished (a team member waiting for a decision): the run pauses, holding
// the call, once the turn's other calls are done.
type HeldError struct {
	// Pending are the calls the held work waits on.
	Pending []approval.Need
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("paused: %d tool call(s) need a decision", len(e.Pending))
}

// Result is the outcome of a run.
type Result struct {
	RunID string
	// Input is the message the run answered (a member's task, for the
	// results of team members).
	Input     string
	Content   string
	Status    event.Status     // how the run ended: never event.StatusRunning
	Err       error            // set when Status is not completed
	ErrorKind string           // classification of Err, as in event.Event.ErrorKind
	Tools     []event.ToolCall // tool executions, in the order they were requested
	Metrics   event.Metrics
	Model     string
	Provider  string
	// Messages are the turn's messages (user, assistant, tool) for the session
	// history of later turns.
	Messages []model.Message
	// Members are the results of member runs, for team runs.
	Members []*Result
	// References are the knowledge passages the run's tools used.
	References []event.Reference
	// Runner names who produced the result (agent or team name).
	Runner string
	// State, when not nil, is the session's new key-value state (a
	// workflow's set_state), saved with the run.
	State map[string]any
	// Pending are the calls a PAUSED run waits on, with what the inbox
	// needs to know of their confirmation policies.
	Pending []approval.Need
	// Held is a PAUSED run's state, to store and continue from.
	Held *Resume
	// Continued marks the result of a run that continued a paused one: its
	// run record exists already.
	Continued bool
	// ReasoningSteps are the run's reasoning steps (planning pass, think
	// calls, native reasoning), in order.
	ReasoningSteps []event.Thought
}

// Config is everything an agent needs, resolved by the engine's compiler.
type Config struct {
	Spec     *spec.Agent
	Provider model.Provider // usually a model.Chain with retries and fallbacks
	Model    string         // primary model id, for events
	Vendor   string         // primary provider name, for events
	Tools    []tool.Tool
	Toolsets []tool.Toolset
	// Gates are the control points of static tools, by tool name, and
	// ToolsetGates those of each toolset (same order as Toolsets): calls
	// they flag pause the run instead of executing.
	Gates        map[string]*approval.Gate
	ToolsetGates []*approval.Gate
	// KnowledgeHint is added to the instructions when the agent has knowledge.
	KnowledgeHint string
	Now           func() time.Time
	// Guardrails check the run's input and answer; nil runs none at no cost.
	Guardrails Guardrails
	// Budgets are the agent's budgets (the zero Policy: none).
	Budgets budget.Policy
	// Reasoner is the planning model of reasoning.model (nil without one),
	// ReasonerModel its vendor model id and ReasonerVendor its provider.
	Reasoner       model.Provider
	ReasonerModel  string
	ReasonerVendor string
	// Summarizer writes the session summaries of summary (nil when off),
	// SummarizerModel its vendor model id and SummarizerVendor its
	// provider; the summary job calls it, never a run.
	Summarizer       model.Provider
	SummarizerModel  string
	SummarizerVendor string
	// LearningModel distils the insights of the agent's runs (learning.model,
	// or the agent's own model); nil without learning. LearningModelID is
	// its vendor model id.
	LearningModel   model.Provider
	LearningModelID string
	// MemoryModel extracts the memories of the agent's runs
	// (memory.model, or the agent's own model); nil unless memory
	// extracts. MemoryModelID is its vendor model id.
	MemoryModel   model.Provider
	MemoryModelID string
	// Secrets are configured credentials the agent's tools do not hold
	// (model API keys, values the specs take from the environment), kept
	// out of the conversations traces record.
	Secrets []string
}

// Guardrails check a run's input before its first model call and its answer
// before it is stored and sent; engine/guard implements it for agents and
// teams. Run calls next at most once, with the checked input, and returns its
// result with the checked answer; when it blocks, it emits the run's
// RunStarted and RunError itself. Safe for concurrent runs.
type Guardrails interface {
	Run(ctx context.Context, in Input, emit func(event.Event), next func(context.Context, Input, func(event.Event)) *Result) *Result
}

// Agent is a run-ready agent. It is immutable and safe for concurrent runs.
type Agent struct {
	cfg    Config
	name   string
	schema *jsonschema.Schema
	defs   []model.ToolDef      // of the static tools
	byName map[string]tool.Tool // static tools by name
	system string               // instructions without the date
	// redact removes the credentials the agent's tools send from everything
	// their results and errors reach: the model's context, events, the stored
	// run and traces.
	redact *tool.Redactor
	// scrub removes those and Config.Secrets from the conversations traces
	// record (event.Event.Exchange).
	scrub *tool.Redactor
	// think is set when the agent offers the think tool (reasoning.tool).
	think bool
}

var _ Runner = (*Agent)(nil)

// New builds an agent. It fails only for an output schema that does not compile,
// which spec validation has already ruled out.
func New(cfg Config) (*Agent, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Agent{cfg: cfg, name: cfg.Spec.Name, byName: map[string]tool.Tool{}}
	for _, t := range cfg.Tools {
		d := t.Def()
		a.byName[d.Name] = t
		if ask := cfg.Gates[d.Name].UserInput(); len(ask) > 0 {
			d = withoutParams(d, ask)
		}
		a.defs = append(a.defs, d)
	}
	if rs := cfg.Spec.Reasoning; rs != nil && rs.Tool == spec.ThinkTool {
		if _, taken := a.byName[spec.ThinkTool]; !taken {
			a.byName[spec.ThinkTool], a.think = thinkTool{}, true
			a.defs = append(a.defs, thinkDef)
		}
	}
	var holders []any
	for _, t := range cfg.Tools {
		holders = append(holders, t)
	}
	for _, ts := range cfg.Toolsets {
		holders = append(holders, ts)
	}
	secrets := tool.CollectSecrets(holders...)
	a.redact = tool.NewRedactor(secrets...)
	a.scrub = tool.NewRedactor(append(secrets, cfg.Secrets...)...)
	var parts []string
	if s := strings.TrimSpace(cfg.Spec.Instructions); s != "" {
		parts = append(parts, s)
	}
	if cfg.KnowledgeHint != "" {
		parts = append(parts, cfg.KnowledgeHint)
	}
	a.system = strings.Join(parts, "\n\n")
	if cfg.Spec.OutputSchema != nil {
		c := jsonschema.NewCompiler()
		if err := c.AddResource("troupe://output.json", map[string]any(cfg.Spec.OutputSchema)); err != nil {
			return nil, fmt.Errorf("agent %s: output_schema: %w", a.name, err)
		}
		s, err := c.Compile("troupe://output.json")
		if err != nil {
			return nil, fmt.Errorf("agent %s: output_schema: %w", a.name, err)
		}
		a.schema = s
	}
	return a, nil
}

// Name returns the agent's name.
func (a *Agent) Name() string { return a.name }

// Description returns the agent's description.
func (a *Agent) Description() string { return a.cfg.Spec.Description }

// Spec returns the agent's definition.
func (a *Agent) Spec() *spec.Agent { return a.cfg.Spec }

// Learning returns the agent's learning, nil without one.
func (a *Agent) Learning() *spec.Learning { return a.cfg.Spec.Learning }

// LearningModel returns the model that distils the agent's runs into
// insights and its model id; nil without learning.
func (a *Agent) LearningModel() (model.Provider, string) {
	return a.cfg.LearningModel, a.cfg.LearningModelID
}

// Memory returns the agent's memory (nil without one).
func (a *Agent) Memory() *spec.Memory { return a.cfg.Spec.Memory }

// MemoryModel returns the model that extracts memories from the agent's
// runs and its vendor model id (nil unless memory extracts).
func (a *Agent) MemoryModel() (model.Provider, string) { return a.cfg.MemoryModel, a.cfg.MemoryModelID }

// ModelInfo returns the primary model and its provider.
func (a *Agent) ModelInfo() (modelID, provider string) { return a.cfg.Model, a.cfg.Vendor }

// HistoryRuns returns the spec's history: how many earlier runs of the
// session the agent reads.
func (a *Agent) HistoryRuns() int { return a.cfg.Spec.HistoryRuns() }

// SummaryModel returns the model that writes the session's summaries,
// its vendor model id and provider (nil when summary is off).
func (a *Agent) SummaryModel() (model.Provider, string, string) {
	return a.cfg.Summarizer, a.cfg.SummarizerModel, a.cfg.SummarizerVendor
}

// SummarySpec returns the spec's summary and the agent's model, its
// default summarizer (the session service folds older turns with them).
func (a *Agent) SummarySpec() (*spec.Summary, string) { return a.cfg.Spec.Summary, a.cfg.Spec.Model }

// HistoryTokens returns the spec's history_tokens: the estimated tokens the
// BudgetPolicy is the budgets the runner's runs count against, for the
// background work that follows them (summaries, memories, learnings).
func (a *Agent) BudgetPolicy() budget.Policy { return a.cfg.Budgets }

// session's earlier runs may take in the context.
func (a *Agent) HistoryTokens() int { return a.cfg.Spec.HistoryTokens }

// Stream runs one turn and returns its events on a channel that is closed after
// the terminal event. The caller must drain the channel or cancel ctx.
func (a *Agent) Stream(ctx context.Context, in Input) <-chan event.Event {
	return Stream(ctx, a, in)
}

// Stream adapts a Runner to a channel of events.
func Stream(ctx context.Context, r Runner, in Input) <-chan event.Event {
	ch := make(chan event.Event, 16)
	go func() {
		defer close(ch)
		r.Execute(ctx, in, func(e event.Event) {
			select {
			case ch <- e:
			case <-ctx.Done():
				if e.Type.Terminal() {
					// Deliver the terminal event even to a reader that is
					// just now noticing the cancellation.
					select {
					case ch <- e:
					case <-time.After(time.Second):
					}
				}
			}
		})
	}()
	return ch
}

// ErrToolLimit ends a run that asked for more tool calls than its limit.
var ErrToolLimit = errors.New("tool call limit reached")

// Execute implements Runner.
func (a *Agent) Execute(ctx context.Context, in Input, emit func(event.Event)) *Result {
	if a.cfg.Guardrails != nil {
		return a.cfg.Guardrails.Run(ctx, in, emit, a.execute)
	}
	return a.execute(ctx, in, emit)
}

func (a *Agent) execute(ctx context.Context, in Input, emit func(event.Event)) *Result {
	r := &run{a: a, in: in, emit: emit, start: a.cfg.Now()}
	if a.cfg.Spec.SessionState {
		if shared, ok := ctx.Value(sharedStateKey{}).(*runState); ok {
			r.state = shared // a team member: the team saves the state
		} else {
			r.state = &runState{state: maps.Clone(in.State)}
		}
	}
	return r.execute(ctx)
}

// withoutParams returns d without the parameters names: they are asked of
// the user (user_input), so the model is not offered them.
func withoutParams(d model.ToolDef, names []string) model.ToolDef {
	params := maps.Clone(d.Parameters)
	if props, ok := params["properties"].(map[string]any); ok {
		props = maps.Clone(props)
		for _, n := range names {
			delete(props, n)
		}
		params["properties"] = props
	}
	if req, ok := params["required"].([]any); ok {
		params["required"] = slices.DeleteFunc(slices.Clone(req), func(v any) bool { s, _ := v.(string); return slices.Contains(names, s) })
	}
	d.Parameters = params
	return d
}

type callIDKey struct{}

// CallID returns the id of the tool call a tool's Call runs for, "" outside
// one: a tool whose work may pause (a team's delegation) keys its held state
// by it.
func CallID(ctx context.Context) string {
	id, _ := ctx.Value(callIDKey{}).(string)
	return id
}

func marshalArgs(args string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(args), &m); err != nil {
		return map[string]any{"_raw": args}
	}
	return m
}

// Exchange returns the renderer of a model request's conversation for its
// ModelRequestCompleted event (event.Event.Exchange), scrubbed of the
// agent's secrets; nil when the agent's spec keeps content out of traces.
// It copies req so that later turns, which append to the request, do not
// change what this one sent.
func (a *Agent) Exchange(req *model.Request, resp *model.Response) *event.Exchange {
	if !a.cfg.Spec.Trace.TraceContent() {
		return nil
	}
	sent, scrub := *req, a.scrub.Redact
	return &event.Exchange{Render: func(maxPart, maxMessages int) (string, string, string) {
		return model.Exchange(&sent, resp, scrub, maxPart, maxMessages)
	}}
}
