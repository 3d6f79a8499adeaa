package api

import (
	"maps"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
)

// workflowSummary is one workflow of GET /workflows: AgentOS's
// WorkflowSummaryResponse plus Troupe's status.
type workflowSummary struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	DBID        string `json:"db_id"`
	Status      string `json:"status"`
}

func (workflowSummary) OpenAPIName() string { return "WorkflowSummary" }

// workflowResponse is GET /workflows/{id}: AgentOS's WorkflowResponse (id,
// name, description, input_schema, steps) plus Troupe's status, spec version
// and output template.
type workflowResponse struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	DBID        string `json:"db_id"`
	// InputSchema is the JSON Schema of the run's input: the workflow's own,
	// or {message: string} when it declares none.
	InputSchema map[string]any `json:"input_schema"`
	Steps       []workflowStep `json:"steps"`
	// Output is the output template; OutputSchema the JSON Schema the
	// output satisfies (the run's content is then that JSON).
	Output       string         `json:"output,omitempty"`
	OutputSchema map[string]any `json:"output_schema,omitempty"`
	Timeout      string         `json:"timeout"`
	Status       string         `json:"status"`
	SpecVersion  string         `json:"spec_version"`
}

func (workflowResponse) OpenAPIName() string { return "Workflow" }

// workflowStep is one step of a workflow's tree. Type is AgentOS's step type
// (Step, Parallel, Condition, Loop, Router; Approval is Troupe's); Kind is
// the YAML step kind. Steps holds a parallel's branches, a condition's then
// steps, a loop's body or a router's choices; ElseSteps a condition's else.
type workflowStep struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Kind       string         `json:"kind"`
	Agent      string         `json:"agent,omitempty"`
	Team       string         `json:"team,omitempty"`
	Workflow   string         `json:"workflow,omitempty"`
	Input      string         `json:"input,omitempty"`
	Retries    int            `json:"retries,omitempty"`
	Timeout    string         `json:"timeout,omitempty"`
	Condition  string         `json:"condition,omitempty"`
	Over       string         `json:"over,omitempty"`
	Until      string         `json:"until,omitempty"`
	As         string         `json:"as,omitempty"`
	Max        int            `json:"max_iterations,omitempty"`
	Expression string         `json:"expression,omitempty"`
	Message    string         `json:"message,omitempty"`
	Steps      []workflowStep `json:"steps,omitempty"`
	ElseSteps  []workflowStep `json:"else_steps,omitempty"`
}

func (workflowStep) OpenAPIName() string { return "WorkflowStep" }

// stepTypes maps step kinds to AgentOS's step types.
var stepTypes = map[string]string{
	spec.StepAgent: "Step", spec.StepTeam: "Step", spec.StepWorkflow: "Step", spec.StepParallel: "Parallel",
	spec.StepCondition: "Condition", spec.StepLoop: "Loop", spec.StepRouter: "Router", spec.StepApproval: "Approval",
}

// WorkflowInputSchema is the JSON Schema of a workflow's input: its declared
// schema, or an object with a required message when it declares none. The
// result is a copy the caller may change.
func WorkflowInputSchema(w *spec.Workflow) map[string]any {
	if len(w.Input) > 0 {
		return maps.Clone(map[string]any(w.Input))
	}
	return map[string]any{"type": "object", "properties": map[string]any{"message": map[string]any{"type": "string"}}, "required": []any{"message"}}
}

func (h *Handler) toWorkflowSummary(snap *engine.Snapshot, w *engine.Workflow) workflowSummary {
	return workflowSummary{ID: w.Name(), Name: w.Name(), Description: w.Spec.Description, DBID: h.opts.DBID,
		Status: objectState(snap, spec.KindWorkflow, w.Name())}
}

func (h *Handler) toWorkflow(snap *engine.Snapshot, w *engine.Workflow) workflowResponse {
	return workflowResponse{
		ID: w.Name(), Name: w.Name(), Description: w.Spec.Description, DBID: h.opts.DBID,
		InputSchema: WorkflowInputSchema(w.Spec), Steps: toWorkflowSteps(w.Steps), Output: w.Spec.Output.Template, OutputSchema: w.Spec.Output.Schema, Timeout: w.Timeout.String(),
		Status: objectState(snap, spec.KindWorkflow, w.Name()), SpecVersion: snap.Version(),
	}
}

func toWorkflowSteps(steps []*engine.WorkflowStep) []workflowStep {
	out := make([]workflowStep, 0, len(steps))
	for _, s := range steps {
		sp := s.Spec
		ws := workflowStep{Name: s.Name, Type: stepTypes[s.Kind], Kind: s.Kind, Agent: sp.Agent, Team: sp.Team, Workflow: sp.Workflow,
			Input: sp.Input, Retries: s.Retries}
		if s.Timeout > 0 {
			ws.Timeout = s.Timeout.String()
		}
		switch s.Kind {
		case spec.StepParallel:
			ws.Steps = toWorkflowSteps(s.Parallel)
		case spec.StepCondition:
			ws.Condition, ws.Steps = sp.Condition.If, toWorkflowSteps(s.Then)
			if len(s.Else) > 0 {
				ws.ElseSteps = toWorkflowSteps(s.Else)
			}
		case spec.StepLoop:
			ws.Over, ws.Until, ws.As, ws.Max, ws.Steps = sp.Loop.Over, sp.Loop.Until, s.As, s.Max, toWorkflowSteps(s.Body)
		case spec.StepRouter:
			ws.Expression, ws.Agent, ws.Steps = sp.Router.Expression, sp.Router.Agent, toWorkflowSteps(s.Choices)
		case spec.StepApproval:
			ws.Message = sp.Approval.Message
		}
		out = append(out, ws)
	}
	return out
}

// objectState is a served object's status: ok, or stale when an edit broke
// it and its last good version serves.
func objectState(snap *engine.Snapshot, kind spec.Kind, name string) string {
	if o, ok := snap.Object(spec.Key{Kind: kind, Name: name}); ok {
		return string(o.Status)
	}
	return string(engine.StatusOK)
}

func (h *Handler) listWorkflows(c *gin.Context) error {
	snap := h.opts.Engine.Current()
	out := []workflowSummary{}
	for _, w := range snap.Workflows() {
		out = append(out, h.toWorkflowSummary(snap, w))
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// checkWorkflowInput refuses, before a run starts, an input that does not
// match its workflow's input schema (or that its typed expressions cannot
// take: a fraction where the schema says integer). The runner checks the same
// way, for runs that do not come through here.
func (h *Handler) checkWorkflowInput(name string, input map[string]any) error {
	w, ok := h.opts.Engine.Current().Workflow(name)
	if !ok {
		return nil // the run service answers for unknown workflows
	}
	if _, err := w.CheckInput(input); err != nil {
		return Errorf(http.StatusUnprocessableEntity, "%v", err)
	}
	return nil
}

func (h *Handler) getWorkflow(c *gin.Context) error {
	snap := h.opts.Engine.Current()
	w, ok := snap.Workflow(c.Param("id"))
	if !ok {
		return notServing(snap, spec.KindWorkflow, c.Param("id"))
	}
	c.JSON(http.StatusOK, h.toWorkflow(snap, w))
	return nil
}

// workflowRunOp documents POST /workflows/{name}/runs for one workflow: the
// run endpoint's usual fields with the workflow's own input JSON Schema as
// the input, so generated clients type it. runOp documents a run endpoint.
func workflowRunOp(runOp func(tag, kind, name, desc string) map[string]any, w *engine.Workflow) map[string]any {
	o := runOp("Workflows", "workflow", w.Name(), w.Spec.Description)
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	boolean := func(desc string) map[string]any { return map[string]any{"type": "boolean", "description": desc} }
	common := func(input map[string]any) map[string]any {
		return map[string]any{"type": "object", "properties": map[string]any{
			"input":      input,
			"message":    str("The input as text: the message of a workflow without an input schema, or the input object as JSON text"),
			"stream":     boolean("Stream server-sent events (default true)"),
			"session_id": str("Continue this workflow session (its state carries over)"),
			"user_id":    str("User id"),
			"background": boolean("Queue the run and answer 202 at once"),
		}}
	}
	o["requestBody"] = map[string]any{"required": true, "content": map[string]any{
		"application/json":    map[string]any{"schema": common(WorkflowInputSchema(w.Spec))},
		"multipart/form-data": map[string]any{"schema": common(str("The input object as JSON text"))},
	}}
	if r, ok := o["responses"].(map[string]any)["422"].(map[string]any); ok {
		r["description"] = "The input is missing or does not match the workflow's input schema"
	}
	if w.Spec.Output.Schema != nil {
		// The run's content is JSON text valid against output.schema:
		// OpenAPI 3.1 (JSON Schema 2020-12) says so with contentSchema.
		if content, ok := o["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any); ok {
			if js, ok := content["application/json"].(map[string]any); ok {
				js["schema"] = map[string]any{"allOf": []any{js["schema"], map[string]any{
					"properties": map[string]any{"content": map[string]any{
						"type": "string", "contentMediaType": "application/json",
						"contentSchema": map[string]any(w.Spec.Output.Schema),
						"description":   "The workflow's output: JSON valid against its output schema",
					}},
				}}}
			}
		}
	}
	return o
}
