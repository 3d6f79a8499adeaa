package api

import (
	"strings"

	"github.com/troupehq/troupe/engine/event"
)

// sseEvent is the JSON of one streamed run event, in AgentOS's shape: the event
// name is both on the SSE "event:" line and in the JSON.
type sseEvent struct {
	Event         string           `json:"event"`
	CreatedAt     int64            `json:"created_at"`
	RunID         string           `json:"run_id"`
	SessionID     string           `json:"session_id,omitempty"`
	AgentID       string           `json:"agent_id,omitempty"`
	AgentName     string           `json:"agent_name,omitempty"`
	TeamID        string           `json:"team_id,omitempty"`
	TeamName      string           `json:"team_name,omitempty"`
	WorkflowID    string           `json:"workflow_id,omitempty"`
	WorkflowName  string           `json:"workflow_name,omitempty"`
	StepName      string           `json:"step_name,omitempty"`
	StepType      string           `json:"step_type,omitempty"`
	Iteration     int              `json:"iteration,omitempty"`
	StepID        string           `json:"step_id,omitempty"`
	StepIndex     *int             `json:"step_index,omitempty"`
	Member        string           `json:"member,omitempty"`
	Depth         int              `json:"depth,omitempty"`
	Model         string           `json:"model,omitempty"`
	ModelProvider string           `json:"model_provider,omitempty"`
	Content       *string          `json:"content,omitempty"`
	ContentType   string           `json:"content_type,omitempty"`
	Tool          *toolResponse    `json:"tool,omitempty"`
	Metrics       *metricsResponse `json:"metrics,omitempty"`
	ErrorType     string           `json:"error_type,omitempty"`
	// Budget names the budget of a BudgetExceeded event.
	Budget     *event.Budget     `json:"budget,omitempty"`
	References []event.Reference `json:"references,omitempty"`
	// Tools and ExtraData complete RunCompleted as AgentOS's does: every
	// tool call of the run, and the references in Agent UI's shape.
	// A RunPaused event's tools are the held calls (ToolExecution).
	Tools     any        `json:"tools,omitempty"`
	ExtraData *extraData `json:"extra_data,omitempty"`
	// ReasoningStep is a ReasoningStep event's step (its content is the
	// step as text); ReasoningSteps are every step, on ReasoningCompleted
	// and RunCompleted.
	ReasoningStep  *event.Thought  `json:"reasoning_step,omitempty"`
	ReasoningSteps []event.Thought `json:"reasoning_steps,omitempty"`
	// ReasoningContent is a ReasoningContentDelta's piece of the model's
	// native reasoning, as AgentOS streams it.
	ReasoningContent string `json:"reasoning_content,omitempty"`
}

// eventName returns the AgentOS name of an event: a team run's own events are
// prefixed with Team; its members' events keep their own names.
func eventName(e event.Event) string {
	if e.WorkflowID != "" && e.TeamID == "" && e.AgentID == "" {
		// A workflow run's own start and end: WorkflowStarted,
		// WorkflowCompleted, WorkflowError, WorkflowCancelled (its step
		// events have names of their own).
		if rest, ok := strings.CutPrefix(string(e.Type), "Run"); ok {
			return "Workflow" + rest
		}
		return string(e.Type)
	}
	if e.TeamID != "" && e.AgentID == "" {
		return "Team" + string(e.Type)
	}
	return string(e.Type)
}

func toSSE(e event.Event) sseEvent {
	out := sseEvent{
		Event: eventName(e), CreatedAt: e.CreatedAt.Unix(), RunID: e.RunID, SessionID: e.SessionID,
		AgentID: e.AgentID, AgentName: e.AgentID, TeamID: e.TeamID, TeamName: e.TeamID,
		Member: e.Member, Depth: e.Depth, Model: e.Model, ModelProvider: e.Provider, ErrorType: e.ErrorKind,
		WorkflowID: e.WorkflowID, WorkflowName: e.WorkflowID, StepName: e.Step, StepType: e.StepType, Iteration: e.Iteration,
		StepID: e.StepID, StepIndex: e.StepIndex,
	}
	switch e.Type {
	case event.RunContent, event.RunCompleted:
		c := e.Content
		out.Content, out.ContentType = &c, "str"
	case event.RunError, event.RunCancelled, event.RunPaused:
		c := e.Content
		out.Content = &c
	case event.ReasoningStep:
		c := e.Content
		out.Content, out.ContentType = &c, "ReasoningStep"
		out.ReasoningStep = e.Reasoning
	case event.StepCompleted, event.StepError, event.RouterExecutionStarted, event.ConditionExecutionStarted:
		// The step's output or error, the chosen route, the condition's value.
		if e.Content != "" {
			c := e.Content
			out.Content = &c
		}
	}
	out.References = e.References
	out.Budget = e.Budget
	if e.Type == event.BudgetExceeded {
		c := e.Content
		out.Content = &c
	}
	if (e.Type == event.RunPaused || e.Type == event.RunContinued) && len(e.Paused) > 0 {
		out.Tools = e.Paused
	}
	out.ReasoningSteps = e.ReasoningSteps
	out.ReasoningContent = e.ReasoningContent
	if e.Type == event.RunCompleted {
		out.ExtraData = toExtraData(e.References, e.ReasoningSteps)
		if len(e.Tools) > 0 {
			out.Tools = toTools(e.Tools)
		}
	}
	if e.Tool != nil {
		t := toTool(*e.Tool)
		out.Tool = &t
	}
	if e.Metrics != nil && (e.Type == event.RunCompleted || e.Type == event.ModelRequestCompleted || e.Type == event.RunError) {
		m := toMetrics(*e.Metrics)
		out.Metrics = &m
	}
	return out
}
