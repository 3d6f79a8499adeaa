package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/expr"
)

// Workflow is a compiled workflow: its tree of steps with the agents, teams
// and nested workflows they run resolved in the same snapshot, and every
// expression and template type-checked and ready to evaluate. It is part of
// the snapshot, so it is immutable and shared by every run that started on
// it; the workflow runner walks it.
//
// Expressions and templates are evaluated with expr.Vars holding:
//
//	"input"   the workflow input (map[string]any)
//	"message" input["message"] as a string, when the workflow has no input schema
//	"steps"   map[string]any of finished steps: {"output": ..., "status": ...}
//	"state"   the session's key-value state (map[string]any)
//
// and, inside a loop body, the loop variable (WorkflowStep.As) and "iteration"
// ({"index": int64}). spec has checked that every steps.<name> refers to a
// step that has finished whenever the expression runs.
type Workflow struct {
	Spec  *spec.Workflow
	Steps []*WorkflowStep
	// Output renders the workflow's output; nil means the last step's output.
	Output *expr.Template
	// OutputSchema, when the spec declares output.schema, is what the
	// output must satisfy (as JSON); nil accepts any output.
	OutputSchema *jsonschema.Schema
	// inputSchema validates a run's input when the spec declares input.
	inputSchema *jsonschema.Schema
	Timeout     time.Duration
	// Runner runs the workflow; nil when the snapshot was compiled without a
	// runtime or without Runtime.Workflows (spec tooling).
	Runner agent.Runner
	// Budgets govern the workflow's runs, steps included.
	Budgets budget.Policy

	byName map[string]*WorkflowStep
}

// Name returns the workflow's name.
func (w *Workflow) Name() string { return w.Spec.Name }

// Step returns a step by name, wherever it is in the tree (names are unique
// across the whole workflow).
func (w *Workflow) Step(name string) (*WorkflowStep, bool) { s, ok := w.byName[name]; return s, ok }

// WorkflowStep is one compiled workflow step. Kind says which of the kind-specific
// fields are set.
type WorkflowStep struct {
	Spec *spec.Step
	Name string
	Kind string // one of spec.StepKinds
	// Index is the step's position among its siblings (the steps of its
	// list, branches or choices), from 0: events carry it as step_index.
	Index int

	// Agent, team and workflow steps: what runs, and its input template (nil:
	// the workflow input as text).
	Agent    *Agent
	Team     *Team
	Workflow *Workflow
	Input    *expr.Template

	Retries  int           // extra attempts after a failure
	Timeout  time.Duration // 0: bounded by the workflow's timeout only
	SetState map[string]*expr.Expr

	// Parallel: branches run at the same time, each one step.
	Parallel []*WorkflowStep

	// Condition: Then when If is true, else Else (possibly empty).
	If         *expr.Expr
	Then, Else []*WorkflowStep

	// Loop: Body for each item of Over, or until Until is true after an
	// iteration; never more than Max iterations. As names the loop variable.
	Over, Until *expr.Expr
	As          string
	Max         int
	Body        []*WorkflowStep

	// Router: the choice named by Route, or by RouterAgent's answer.
	Route       *expr.Expr
	RouterAgent *Agent
	Choices     []*WorkflowStep

	// Approval: what the reviewer is asked (nil: nothing specific).
	Message *expr.Template
}

// Choice returns a router step's choice by name.
func (s *WorkflowStep) Choice(name string) (*WorkflowStep, bool) {
	for _, c := range s.Choices {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// workflow compiles a workflow and, first, the workflows it nests. A workflow
// reached again while it is being built is part of a cycle (possible only
// between an old serving version and a new one) and is marked broken.
func (c *compiler) workflow(s *Snapshot, w *spec.Workflow, building map[string]bool) *Workflow {
	if done, ok := s.workflows[w.Name]; ok {
		return done
	}
	k := spec.Key{Kind: spec.KindWorkflow, Name: w.Name}
	if building[w.Name] {
		return nil
	}
	building[w.Name] = true
	defer delete(building, w.Name)
	out := &Workflow{Spec: w, Output: w.OutputTemplate(), Timeout: w.Limits.Timeout.D(), byName: map[string]*WorkflowStep{}}
	// spec validation has compiled both schemas already; this cannot fail
	// for a document that passed it.
	var err error
	if out.OutputSchema, err = compileSchema(w.Output.Schema); err != nil {
		c.breakObject(k, fmt.Errorf("workflow %s: output.schema: %w", w.Name, err))
		return nil
	}
	if out.inputSchema, err = compileSchema(w.Input); err != nil {
		c.breakObject(k, fmt.Errorf("workflow %s: input: %w", w.Name, err))
		return nil
	}
	out.Budgets = c.policy(w.Budgets)
	steps, err := c.workflowSteps(s, out, w.Steps, building)
	if err != nil {
		if o := c.objects[k]; o.Doc != nil {
			c.breakObject(k, err)
		}
		return nil
	}
	out.Steps = steps
	if c.rt != nil && c.rt.Workflows != nil {
		out.Runner = c.rt.Workflows(out)
	}
	s.workflows[w.Name] = out
	return out
}

func (c *compiler) workflowSteps(s *Snapshot, w *Workflow, steps []spec.Step, building map[string]bool) ([]*WorkflowStep, error) {
	out := make([]*WorkflowStep, 0, len(steps))
	for i := range steps {
		st, err := c.workflowStep(s, w, &steps[i], building)
		if err != nil {
			return nil, err
		}
		st.Index = i
		out = append(out, st)
	}
	return out, nil
}

func (c *compiler) workflowStep(s *Snapshot, w *Workflow, sp *spec.Step, building map[string]bool) (*WorkflowStep, error) {
	st := &WorkflowStep{
		Spec: sp, Name: sp.Name, Kind: sp.Kind(), Input: sp.InputTemplate(),
		Retries: sp.Retries, Timeout: sp.Timeout.D(), SetState: sp.SetStateExprs(),
		If: sp.If(), Over: sp.Over(), Until: sp.Until(), Route: sp.Route(), Message: sp.Message(),
	}
	w.byName[st.Name] = st
	var err error
	notServing := func(kind, name string) error {
		return fmt.Errorf("step %q: %s %q is not serving", sp.Name, kind, name)
	}
	switch st.Kind {
	case spec.StepAgent:
		var ok bool
		if st.Agent, ok = s.agents[sp.Agent]; !ok {
			return nil, notServing("agent", sp.Agent)
		}
	case spec.StepTeam:
		var ok bool
		if st.Team, ok = s.teams[sp.Team]; !ok {
			return nil, notServing("team", sp.Team)
		}
	case spec.StepWorkflow:
		if o, ok := c.objects[spec.Key{Kind: spec.KindWorkflow, Name: sp.Workflow}]; ok && o.Doc != nil {
			st.Workflow = c.workflow(s, o.Doc.(*spec.Workflow), building)
		}
		if st.Workflow == nil {
			return nil, notServing("workflow", sp.Workflow)
		}
	case spec.StepParallel:
		st.Parallel, err = c.workflowSteps(s, w, sp.Parallel, building)
	case spec.StepCondition:
		if st.Then, err = c.workflowSteps(s, w, sp.Condition.Then, building); err == nil {
			st.Else, err = c.workflowSteps(s, w, sp.Condition.Else, building)
		}
	case spec.StepLoop:
		st.As, st.Max = sp.Loop.LoopVar(), sp.Loop.Max
		st.Body, err = c.workflowSteps(s, w, sp.Loop.Steps, building)
	case spec.StepRouter:
		if sp.Router.Agent != "" {
			var ok bool
			if st.RouterAgent, ok = s.agents[sp.Router.Agent]; !ok {
				return nil, notServing("agent", sp.Router.Agent)
			}
		}
		st.Choices, err = c.workflowSteps(s, w, sp.Router.Choices, building)
	case spec.StepApproval:
	default:
		return nil, fmt.Errorf("step %q has no single kind", sp.Name) // refused by spec: not served
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// compileSchema compiles a JSON Schema from a spec; nil for none.
func compileSchema(schema spec.JSONSchema) (*jsonschema.Schema, error) {
	if schema == nil {
		return nil, nil
	}
	sc := jsonschema.NewCompiler()
	if err := sc.AddResource("troupe://schema.json", map[string]any(schema)); err != nil {
		return nil, err
	}
	return sc.Compile("troupe://schema.json")
}

// CheckInput validates a run's input against the workflow's input schema
// and returns it with JSON numbers in integer fields made ints, the types
// its expressions were checked against. Workflows without an input schema
// take any input. The error says which field is wrong and why.
func (w *Workflow) CheckInput(input map[string]any) (map[string]any, error) {
	if w.inputSchema == nil {
		return input, nil
	}
	if err := w.inputSchema.Validate(input); err != nil {
		return nil, fmt.Errorf("the input does not match workflow %s's input schema: %s", w.Name(), SchemaViolation(err))
	}
	s := w.Spec.InputSchema()
	if s == nil {
		return input, nil
	}
	in, err := s.Coerce(input)
	if err != nil {
		return nil, fmt.Errorf("workflow %s: %w: send a whole number", w.Name(), err)
	}
	m, _ := in.(map[string]any)
	return m, nil
}

var english = message.NewPrinter(language.English)

// SchemaViolation names the first violated place of a JSON value, as a JSON
// pointer, and why; other errors are returned as they are.
func SchemaViolation(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	return fmt.Sprintf("at /%s: %s", strings.Join(ve.InstanceLocation, "/"), ve.ErrorKind.LocalizedString(english))
}
