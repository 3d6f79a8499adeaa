// Package event defines the typed events a run emits while it executes: the one
// vocabulary shared by the agent loop, teams, the CLI and the HTTP streams.
package event

import (
	"time"

	"github.com/troupehq/troupe/engine/model"
)

// Type names an event. The names match AgentOS's run events, so the HTTP layer
// can use them as SSE event names directly (team runs prefix them with Team).
type Type string

// Event types. Every run ends with exactly one terminal event: RunCompleted,
// RunError or RunCancelled.
const (
	RunStarted            Type = "RunStarted"
	RunContent            Type = "RunContent"
	ToolCallStarted       Type = "ToolCallStarted"
	ToolCallCompleted     Type = "ToolCallCompleted"
	ToolCallError         Type = "ToolCallError"
	ModelRequestCompleted Type = "ModelRequestCompleted"
	RunCompleted          Type = "RunCompleted"
	RunError              Type = "RunError"
	RunCancelled          Type = "RunCancelled"
	// RunPaused ends a workflow run that waits at an approval step, or an
	// agent or team run that holds tool calls for a decision (Paused lists
	// them); it continues (as a new execution of the same run) once decided.
	RunPaused Type = "RunPaused"
	// GuardrailChecked reports one guardrail's decision on a run's input or
	// output (engine/guard); traces turn it into a guardrail.<name> span.
	// It is internal: AgentOS streams do not carry it.
	GuardrailChecked Type = "GuardrailChecked"
	// BudgetExceeded precedes the RunError of a run a budget refused, and
	// names the budget, its key, the limit and the usage (Budget).
	BudgetExceeded Type = "BudgetExceeded"
	// RunContinued starts the execution of a paused agent or team run that
	// was continued (in place of RunStarted).
	RunContinued Type = "RunContinued"
	// ReasoningStarted, ReasoningStep and ReasoningCompleted report an
	// agent's reasoning (a planning pass, think tool calls, or the model's
	// native reasoning): each ReasoningStep carries one step in Reasoning,
	// ReasoningCompleted all of the run's steps in ReasoningSteps.
	ReasoningStarted   Type = "ReasoningStarted"
	ReasoningStep      Type = "ReasoningStep"
	ReasoningCompleted Type = "ReasoningCompleted"
	// ReasoningContentDelta streams a model's native reasoning as it is
	// generated (ReasoningContent), in streamed runs; the whole text then
	// arrives as one ReasoningStep when the model's answer is complete.
	ReasoningContentDelta Type = "ReasoningContentDelta"
	// SessionSummaryStarted and SessionSummaryCompleted (AgentOS names)
	// mark the background job that folds a session's older turns into its
	// summary. The job runs after the run's stream has closed, so they are
	// the job's log lines, not stream events.
	SessionSummaryStarted   Type = "SessionSummaryStarted"
	SessionSummaryCompleted Type = "SessionSummaryCompleted"
)

// Workflow step events, named as AgentOS names them. A workflow run's own
// start and end are RunStarted and the terminal Run events with WorkflowID
// set (the HTTP layer names them WorkflowStarted, WorkflowCompleted, ...);
// these describe its steps and carry Step, StepType and Iteration.
const (
	StepStarted                Type = "StepStarted"
	StepCompleted              Type = "StepCompleted"
	StepError                  Type = "StepError"
	ParallelExecutionStarted   Type = "ParallelExecutionStarted"
	ParallelExecutionCompleted Type = "ParallelExecutionCompleted"
	ConditionExecutionStarted  Type = "ConditionExecutionStarted"
	ConditionExecutionComplete Type = "ConditionExecutionCompleted"
	LoopExecutionStarted       Type = "LoopExecutionStarted"
	LoopIterationStarted       Type = "LoopIterationStarted"
	LoopIterationCompleted     Type = "LoopIterationCompleted"
	LoopExecutionCompleted     Type = "LoopExecutionCompleted"
	RouterExecutionStarted     Type = "RouterExecutionStarted"
	RouterExecutionCompleted   Type = "RouterExecutionCompleted"
)

// Terminal reports whether t ends a run.
func (t Type) Terminal() bool {
	return t == RunCompleted || t == RunError || t == RunCancelled || t == RunPaused
}

// Status returns the run status a terminal event ends a run with, and
// StatusRunning for every other event.
func (t Type) Status() Status {
	switch t {
	case RunCompleted:
		return StatusCompleted
	case RunError:
		return StatusError
	case RunCancelled:
		return StatusCancelled
	case RunPaused:
		return StatusPaused
	}
	return StatusRunning
}

// Status is a run's lifecycle state: the one vocabulary of the agent loop's
// results, the run service, the store and the HTTP answers. It lives here, in
// the leaf package of run events, rather than with the run service
// (engine/session), because the agent and team loops report it in their
// results and engine/session imports them.
type Status string

// Run statuses. A run is StatusRunning from its start until it ends with one
// of the three final ones; a background run is StatusPending from its
// submission until a worker starts it. The values are those AgentOS reports.
const (
	StatusPending   Status = "PENDING"
	StatusRunning   Status = "RUNNING"
	StatusCompleted Status = "COMPLETED"
	StatusError     Status = "ERROR"
	StatusCancelled Status = "CANCELLED"
	// StatusPaused is a workflow run waiting at an approval step, or an
	// agent or team run holding tool calls for a decision: it has ended for
	// now (Terminal), and continuing it (POST …/continue, or its last
	// decision in the approvals inbox) executes it again.
	StatusPaused Status = "PAUSED"
)

// Terminal reports whether s is a final status (PAUSED included: nothing
// executes the run until it is continued).
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusError || s == StatusCancelled || s == StatusPaused
}

// Event is one thing that happened in a run. Fields not relevant to a type are
// empty.
type Event struct {
	// Index numbers a top-level run's events from 0 in the order the run
	// service sends them, members' events included, so a client that lost
	// its stream can resume after the last one it saw. Only the run service
	// sets it; it travels beside the event (the SSE id line, the event
	// log's own column), never inside its JSON.
	Index int `json:"-"`

	Type      Type   `json:"event"`
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id,omitempty"`
	AgentID   string `json:"agent_id,omitempty"`
	TeamID    string `json:"team_id,omitempty"`
	// WorkflowID names the workflow of a workflow run's own events (its
	// start, end and step events).
	WorkflowID string    `json:"workflow_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`

	// Step is the workflow step an event belongs to: set on step events and
	// on the events of the agents, teams and workflows a step runs.
	// StepType is its kind (agent, parallel, loop, ...); Iteration the loop
	// iteration it runs in, from 0.
	Step      string `json:"step_name,omitempty"`
	StepType  string `json:"step_type,omitempty"`
	Iteration int    `json:"iteration,omitempty"`
	// StepID is the step's path in the run ("name", "loop[1]/name",
	// "nested/name"), as its checkpoint records it; StepIndex its position
	// among its siblings from 0, or the iteration for a loop iteration's
	// events (nil on events of no step). AgentOS's step_id and step_index.
	StepID    string `json:"step_id,omitempty"`
	StepIndex *int   `json:"step_index,omitempty"`

	// Member events of a team run: the member that emitted it and how deep it is
	// (0 is the team itself, 1 its direct members, ...).
	Member string `json:"member,omitempty"`
	Depth  int    `json:"depth,omitempty"`

	// Content is the delta for RunContent and the full answer for RunCompleted;
	// the message for RunError and RunCancelled.
	Content string `json:"content,omitempty"`
	// Model is the model id for RunStarted and ModelRequestCompleted.
	Model string `json:"model,omitempty"`
	// Provider is the model vendor for RunStarted and ModelRequestCompleted.
	Provider string `json:"model_provider,omitempty"`

	Tool    *ToolCall `json:"tool,omitempty"`
	Metrics *Metrics  `json:"metrics,omitempty"`
	// References are the knowledge passages the run used (RunCompleted).
	References []Reference `json:"references,omitempty"`
	// Tools are every tool call of the run, in the order they were
	// requested (RunCompleted), so a client that missed or discarded the
	// ToolCall events (AgentOS clients reload a new session's messages
	// while it streams) can still show them.
	Tools []ToolCall `json:"tools,omitempty"`
	// Guardrail is the decision of a GuardrailChecked event.
	Guardrail *GuardrailCheck `json:"guardrail,omitempty"`
	// Budget describes the budget of a BudgetExceeded event.
	Budget *Budget `json:"budget,omitempty"`
	// Paused are the tool calls a RunPaused agent or team run waits on a
	// decision for (confirmation, user input, an external result); on
	// RunContinued, the same calls with their decisions.
	Paused []ToolExecution `json:"paused_tools,omitempty"`
	// Reasoning is the step of a ReasoningStep event; ReasoningSteps the
	// steps so far on ReasoningCompleted and RunCompleted.
	Reasoning      *Thought  `json:"reasoning_step,omitempty"`
	ReasoningSteps []Thought `json:"reasoning_steps,omitempty"`
	// ReasoningContent is a ReasoningContentDelta's piece of native
	// reasoning.
	ReasoningContent string `json:"reasoning_content,omitempty"`
	// Exchange, on ModelRequestCompleted, renders what the request sent the
	// model and what it answered as GenAI message JSON (see model.Exchange),
	// for traces that show them: lazily, so runs whose traces keep no content
	// pay nothing. Nil when the agent's or team's spec keeps content out of
	// traces (trace: {content: false}). Never encoded: events reach clients
	// and journals, the conversation only traces.
	Exchange *Exchange `json:"-"`
	// ErrorKind classifies RunError (a model.ErrorKind, or "limit", "timeout",
	// "output_schema", "tool").
	ErrorKind string `json:"error_kind,omitempty"`
}

// ToolCall describes a tool execution in ToolCall* events and run results.
type ToolCall struct {
	ID        string         `json:"tool_call_id"`
	Name      string         `json:"tool_name"`
	Args      map[string]any `json:"tool_args"`
	Result    string         `json:"result,omitempty"`
	Error     bool           `json:"tool_call_error,omitempty"`
	StartedAt time.Time      `json:"started_at"`
	Duration  time.Duration  `json:"duration_ns,omitempty"`
	Member    string         `json:"member,omitempty"`
}

// Thought is one step of an agent's reasoning, in Agno's shape (title,
// action, result, reasoning, next_action, confidence). Troupe fills what its
// sources give: a planning pass's numbered step as Title and Action, a think
// tool's thought or a model's native reasoning as Reasoning.
type Thought struct {
	Title      string  `json:"title,omitempty"`
	Action     string  `json:"action,omitempty"`
	Result     string  `json:"result,omitempty"`
	Reasoning  string  `json:"reasoning,omitempty"`
	NextAction string  `json:"next_action,omitempty"` // continue, final_answer
	Confidence float64 `json:"confidence,omitempty"`
	// Source says where the step came from: plan, think or native.
	Source string `json:"source,omitempty"`
}

// Reasoning step sources.
const (
	ReasoningPlan   = "plan"
	ReasoningThink  = "think"
	ReasoningNative = "native"
)

// GuardrailCheck is one guardrail's decision on a run's input or output.
type GuardrailCheck struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`      // pii, injection, size, model, http
	Direction string `json:"direction"` // input or output
	Action    string `json:"action"`    // the configured action: block or redact
	Decision  string `json:"decision"`  // allow, block or redact
	// Matched names what was found: PII kinds, injection rules.
	Matched []string `json:"matched,omitempty"`
	// Redactions counts the replaced matches per PII kind.
	Redactions map[string]int `json:"redactions,omitempty"`
	Score      float64        `json:"score,omitempty"` // injection score, 0..1
	Reason     string         `json:"reason,omitempty"`
	// Error is the judge's or endpoint's failure that on_error decided.
	Error     string        `json:"error,omitempty"`
	StartedAt time.Time     `json:"started_at"`
	Duration  time.Duration `json:"duration_ns"`
}

// Budget names the budget a run exceeded: its name, the counter's scope and
// window, the limit (cost, tokens, tool_calls, wall_time), the cap and the
// usage, formatted.
type Budget struct {
	Name   string `json:"name"`
	Scope  string `json:"scope,omitempty"`
	Window string `json:"window,omitempty"`
	Limit  string `json:"limit"`
	Max    string `json:"max"`
	Used   string `json:"used"`
}

// ToolExecution is a tool call a paused run waits on, in AgentOS's shape:
// what it needs (requires_confirmation, requires_user_input with
// user_input_schema, external_execution_required) and, once decided, the
// decision (confirmed, edited tool_args, filled user_input_schema values,
// result).
type ToolExecution struct {
	ToolCallID                string           `json:"tool_call_id"`
	ToolName                  string           `json:"tool_name"`
	ToolArgs                  map[string]any   `json:"tool_args"`
	RequiresConfirmation      bool             `json:"requires_confirmation,omitempty"`
	RequiresUserInput         bool             `json:"requires_user_input,omitempty"`
	UserInputSchema           []UserInputField `json:"user_input_schema,omitempty"`
	ExternalExecutionRequired bool             `json:"external_execution_required,omitempty"`
	// ApprovalID names the inbox record of a call that needs confirmation.
	ApprovalID string `json:"approval_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Member is the team member whose call it is, for a team run.
	Member string `json:"member,omitempty"`

	// The decision.
	Confirmed        *bool   `json:"confirmed,omitempty"`
	ConfirmationNote string  `json:"confirmation_note,omitempty"`
	Result           *string `json:"result,omitempty"`
	// DecidedBy and DecidedAt say who confirmed or rejected the call, and
	// when (from its inbox record), on RunContinued events.
	DecidedBy string     `json:"decided_by,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
}

// UserInputField is one parameter a call asks of the user.
type UserInputField struct {
	Name        string `json:"name"`
	FieldType   string `json:"field_type"`
	Description string `json:"description,omitempty"`
	Value       any    `json:"value"`
}

// Missing says what decision the call still lacks, or "" when it has all.
func (t *ToolExecution) Missing() string {
	switch {
	case t.RequiresConfirmation && t.Confirmed == nil:
		return "confirmed"
	case t.ExternalExecutionRequired && t.Result == nil:
		return "result"
	case t.RequiresUserInput:
		for _, f := range t.UserInputSchema {
			if f.Value == nil {
				return "user_input_schema value of " + f.Name
			}
		}
	}
	return ""
}

// Reference is a knowledge passage a run used to answer.
type Reference struct {
	KnowledgeID  string  `json:"knowledge_id"`
	DocumentID   string  `json:"document_id"`
	DocumentName string  `json:"document_name"`
	ChunkID      string  `json:"chunk_id"`
	Score        float64 `json:"score"`
	Page         int     `json:"page,omitempty"`
	Heading      string  `json:"heading,omitempty"`
	// Query is what the search that found the passage looked for.
	Query string `json:"query,omitempty"`
	// Content is the passage's text, as the model read it.
	Content string `json:"content,omitempty"`
	// Chunk is the passage's position in its document, counted from 1 as
	// Agno numbers chunks; 0 when the knowledge store does not say.
	Chunk int `json:"chunk,omitempty"`
	// SearchTime is how long the search that found the passage took.
	SearchTime time.Duration `json:"search_time_ns,omitempty"`
}

// Metrics are a run's (or one model request's) measurements.
type Metrics struct {
	InputTokens  int           `json:"input_tokens"`
	OutputTokens int           `json:"output_tokens"`
	TotalTokens  int           `json:"total_tokens"`
	Duration     time.Duration `json:"duration_ns"`
	// TimeToFirstToken is measured from the start of the run (or request) to the
	// first content delta; zero when nothing streamed.
	TimeToFirstToken time.Duration `json:"time_to_first_token_ns,omitempty"`
	ModelRequests    int           `json:"model_requests,omitempty"`
	ToolCalls        int           `json:"tool_calls,omitempty"`
	// Cost is what the model calls cost, in USD on the wire (Agno's metrics
	// field name); CostUnknown is set when some call's model has no price.
	Cost        model.Cost `json:"cost"`
	CostUnknown bool       `json:"cost_unknown,omitempty"`
}

// AddCost accumulates a model answer's cost.
func (m *Metrics) AddCost(r *model.Response) {
	m.Cost += r.Cost
	if !r.CostKnown {
		m.CostUnknown = true
	}
}

// Add accumulates the usage, cost and counts of another run (a team member's,
// a workflow step's) into m; durations are not added.
func (m *Metrics) Add(o Metrics) {
	m.InputTokens += o.InputTokens
	m.OutputTokens += o.OutputTokens
	m.TotalTokens = m.InputTokens + m.OutputTokens
	m.ModelRequests += o.ModelRequests
	m.ToolCalls += o.ToolCalls
	m.Cost += o.Cost
	m.CostUnknown = m.CostUnknown || o.CostUnknown
}

// AddUsage accumulates token usage.
func (m *Metrics) AddUsage(u model.Usage) {
	m.InputTokens += u.InputTokens
	m.OutputTokens += u.OutputTokens
	m.TotalTokens = m.InputTokens + m.OutputTokens
}

// Text is the step as one line of text: its title and what it says.
func (t *Thought) Text() string {
	body := t.Action
	if body == "" {
		body = t.Reasoning
	}
	if t.Title == "" {
		return body
	}
	return t.Title + ": " + body
}

// Exchange renders a model request's conversation (Event.Exchange). A
// pointer in events, so events stay comparable.
type Exchange struct {
	// Render returns the system instructions, the input messages and the
	// output messages as GenAI JSON, each text cut to maxPart bytes and
	// the input to its last maxMessages messages.
	Render func(maxPart, maxMessages int) (system, input, output string)
}
