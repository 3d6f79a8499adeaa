package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/spec/expr"
)

// Workflow is a fixed, deterministic pipeline of steps: agents, teams and
// nested workflows run in order, with fan-out (parallel), branches
// (condition, router), loops and human approval points.
//
// Expressions (if, over, until, router expression, set_state values) are CEL;
// templates (input, output, approval message) are text with {{ CEL }} holes.
// They may use these variables:
//
//	input             the workflow input (a map; without an input schema, {"message": ...})
//	message           input.message, when the workflow has no input schema
//	steps.<name>      an earlier step: .output (text, or JSON from an agent with
//	                  output_schema) and .status
//	state.<key>       the workflow session's key-value state
//	iteration.index   inside a loop body: the iteration, from 0 (loop is a
//	                  reserved word in CEL, so the design's loop.index is spelt so)
//	item              inside a loop body: the loop variable (named by as:)
//
// Which steps an expression may refer to (checked by troupe check): the steps
// that have finished whenever it is evaluated.
//   - Steps earlier in the same list, and those visible to the enclosing step.
//   - After a parallel step, the parallel and every step of every branch
//     (branches are joined). Within a parallel, branches never see each
//     other: they run at the same time.
//   - Steps inside a condition, loop or router are visible only inside it
//     (only one branch of a condition or router runs, and a loop body runs any
//     number of times); outside, refer to the condition's, loop's or router's
//     own output: a condition's and a router's output is the output of the
//     branch that ran, a loop's is the list of its iterations' outputs.
//   - A step's set_state may refer to the step itself (it runs after it); a
//     loop's until may refer to the steps of its body (it runs after each
//     iteration).
type Workflow struct {
	Meta `yaml:",inline"`

	Input   JSONSchema     `yaml:"input" doc:"JSON Schema (type object) of the workflow input; without it the input is {message: string}."`
	Steps   []Step         `yaml:"steps" spec:"required" doc:"The steps, run in order."`
	Output  WorkflowOutput `yaml:"output" doc:"The workflow's output: a template such as \"{{ steps.draft.output }}\", or a mapping with template and schema; default: the last step's output."`
	Limits  WorkflowLimits `yaml:"limits" doc:"Bounds on one workflow run."`
	Budgets []string       `yaml:"budgets" doc:"Names of Budget documents capping this workflow's runs, steps included."`

	output      *expr.Template // compiled by check; nil when Output is empty
	inputSchema *expr.Schema   // derived by check; nil when input is untyped
}

// WorkflowOutput is a workflow's output: written as a string, the template;
// as a mapping, a template, a JSON Schema, or both. With a schema the output
// (the template's result, or the last step's output) must be JSON valid
// against it, or the run fails naming the violated path; the stored run's
// content is then that JSON.
type WorkflowOutput struct {
	Template string     `yaml:"template" spec:"short" doc:"Template of the output, such as \"{{ steps.draft.output }}\"; default: the last step's output."`
	Schema   JSONSchema `yaml:"schema" doc:"JSON Schema the output must satisfy; the output is then JSON (the run fails when it does not match)."`
}

// WorkflowLimits bound one workflow run.
type WorkflowLimits struct {
	Timeout Duration `yaml:"timeout" doc:"Wall-clock limit for a whole workflow run (default 30m)."`
}

// DefaultWorkflowTimeout bounds a workflow run when limits.timeout is not set.
const DefaultWorkflowTimeout = 30 * time.Minute

// MaxLoopIterations is the largest max a loop may declare.
const MaxLoopIterations = 1000

// Step is one step of a workflow. Exactly one of Agent, Team, Workflow,
// Parallel, Condition, Loop, Router and Approval is set (see Kind).
type Step struct {
	Name      string            `yaml:"name" spec:"required" doc:"Unique name within the whole workflow (nested steps included); later steps refer to it as steps.<name>."`
	Agent     string            `yaml:"agent" doc:"Run this agent."`
	Team      string            `yaml:"team" doc:"Run this team."`
	Workflow  string            `yaml:"workflow" doc:"Run this workflow (nested)."`
	Parallel  []Step            `yaml:"parallel" doc:"Run these steps at the same time, then continue when all have finished."`
	Condition *Condition        `yaml:"condition" doc:"Run then or else depending on a CEL condition."`
	Loop      *Loop             `yaml:"loop" doc:"Run steps for each item of a list, or until a condition holds."`
	Router    *Router           `yaml:"router" doc:"Run one of several choices, picked by a CEL expression or an agent."`
	Approval  *Approval         `yaml:"approval" doc:"Pause for a person to approve before continuing."`
	Input     string            `yaml:"input" doc:"Template of the input given to the agent, team or workflow, such as \"Summarize {{ steps.research.output }}\"; default: the workflow input as text."`
	Retries   int               `yaml:"retries" doc:"How many times to retry the step after a failure (default 0: at most once)."`
	Timeout   Duration          `yaml:"timeout" doc:"Wall-clock limit for the step."`
	SetState  map[string]string `yaml:"set_state" doc:"State keys to write after the step, each from a CEL expression (which may use steps.<this step>)."`

	compiled stepExprs
}

// Condition runs Then when If is true, else Else.
type Condition struct {
	If   string `yaml:"if" spec:"required" doc:"CEL expression giving true or false."`
	Then []Step `yaml:"then" spec:"required" doc:"Steps run when the condition is true."`
	Else []Step `yaml:"else" doc:"Steps run when it is false."`
}

// Loop runs Steps over a list or until a condition holds, at most Max times.
type Loop struct {
	Over  string `yaml:"over" doc:"CEL expression giving the list to iterate over."`
	Until string `yaml:"until" doc:"CEL condition checked after each iteration; the loop stops when it is true."`
	As    string `yaml:"as" doc:"Name of the loop variable holding the current item (default item)."`
	Max   int    `yaml:"max" doc:"Most iterations the loop may run: required, 1 to 1000."`
	Steps []Step `yaml:"steps" spec:"required" doc:"Steps run in each iteration."`
}

// Router runs the one choice named by Expression or by Agent's answer.
type Router struct {
	Expression string `yaml:"expression" doc:"CEL expression giving the name of the choice to run."`
	Agent      string `yaml:"agent" doc:"Agent that answers with the name of the choice to run."`
	Choices    []Step `yaml:"choices" spec:"required" doc:"The steps to choose from, by name."`
}

// Approval pauses the workflow until a person approves.
type Approval struct {
	Message string `yaml:"message" spec:"short" doc:"Template of what the reviewer is asked."`
	// Who decides, and what a timeout decides, as on tool approval
	// policies: the step is a row of the approvals inbox.
	Approvers Approvers `yaml:"approvers" doc:"Who may decide (default: any key with scope approvals:write)."`
	Timeout   Duration  `yaml:"timeout" doc:"How long a decision may take before default applies (default: no limit)."`
	Default   string    `yaml:"default" enum:"approve,reject" doc:"The decision applied on timeout (default reject)."`
}

// Step kinds, as returned by Step.Kind.
const (
	StepAgent     = "agent"
	StepTeam      = "team"
	StepWorkflow  = "workflow"
	StepParallel  = "parallel"
	StepCondition = "condition"
	StepLoop      = "loop"
	StepRouter    = "router"
	StepApproval  = "approval"
)

// StepKinds lists the step kinds in the order they are documented.
var StepKinds = []string{StepAgent, StepTeam, StepWorkflow, StepParallel, StepCondition, StepLoop, StepRouter, StepApproval}

// kinds returns every kind the step sets.
func (s *Step) kinds() []string {
	var out []string
	for _, k := range []struct {
		name string
		set  bool
	}{
		{StepAgent, s.Agent != ""}, {StepTeam, s.Team != ""}, {StepWorkflow, s.Workflow != ""},
		{StepParallel, s.Parallel != nil}, {StepCondition, s.Condition != nil}, {StepLoop, s.Loop != nil},
		{StepRouter, s.Router != nil}, {StepApproval, s.Approval != nil},
	} {
		if k.set {
			out = append(out, k.name)
		}
	}
	return out
}

// Kind is what the step does: one of StepKinds (empty for an invalid step).
func (s *Step) Kind() string {
	if k := s.kinds(); len(k) == 1 {
		return k[0]
	}
	return ""
}

// stepExprs are a step's compiled expressions and templates.
type stepExprs struct {
	input    *expr.Template
	cond     *expr.Expr
	over     *expr.Expr
	until    *expr.Expr
	route    *expr.Expr
	message  *expr.Template
	setState map[string]*expr.Expr
}

// InputTemplate is the step's compiled input template, or nil when the step
// takes the workflow input as text.
func (s *Step) InputTemplate() *expr.Template { return s.compiled.input }

// If is a condition step's compiled condition.
func (s *Step) If() *expr.Expr { return s.compiled.cond }

// Over is a loop step's compiled list expression, or nil for an until loop.
func (s *Step) Over() *expr.Expr { return s.compiled.over }

// Until is a loop step's compiled stop condition, or nil for an over loop.
func (s *Step) Until() *expr.Expr { return s.compiled.until }

// Route is a router step's compiled choice expression, or nil when an agent chooses.
func (s *Step) Route() *expr.Expr { return s.compiled.route }

// Message is an approval step's compiled message template (nil if none).
func (s *Step) Message() *expr.Template { return s.compiled.message }

// SetStateExprs are the compiled set_state expressions by state key.
func (s *Step) SetStateExprs() map[string]*expr.Expr { return s.compiled.setState }

// LoopVar is the name of a loop step's loop variable.
func (l *Loop) LoopVar() string {
	if l.As == "" {
		return "item"
	}
	return l.As
}

// OutputTemplate is the compiled output template, or nil for the last
// step's output.
func (w *Workflow) OutputTemplate() *expr.Template { return w.output }

// Walk calls fn for every step of the workflow, parents before children,
// with the step's object path.
func (w *Workflow) Walk(fn func(path string, s *Step)) {
	walkSteps(w.Path()+".steps", w.Steps, fn)
}

func walkSteps(path string, steps []Step, fn func(string, *Step)) {
	for i := range steps {
		s := &steps[i]
		p := indexPath(path, i)
		fn(p, s)
		walkSteps(p+".parallel", s.Parallel, fn)
		if s.Condition != nil {
			walkSteps(p+".condition.then", s.Condition.Then, fn)
			walkSteps(p+".condition.else", s.Condition.Else, fn)
		}
		if s.Loop != nil {
			walkSteps(p+".loop.steps", s.Loop.Steps, fn)
		}
		if s.Router != nil {
			walkSteps(p+".router.choices", s.Router.Choices, fn)
		}
	}
}

func (w *Workflow) applyDefaults() {
	if w.Limits.Timeout == 0 {
		w.Limits.Timeout = Duration(DefaultWorkflowTimeout)
	}
	w.Walk(func(_ string, s *Step) {
		if a := s.Approval; a != nil {
			if a.Default == "" {
				a.Default = DecisionReject
			}
			if len(a.Approvers.Scopes) == 0 && len(a.Approvers.Users) == 0 {
				a.Approvers.Scopes = []string{DefaultApproverScope}
			}
		}
	})
}

// validate checks what needs the rest of the folder: the agents, teams and
// workflows the steps name. Everything else is checked once, when the
// document is decoded (check).
func (w *Workflow) validate(v *validator) {
	p := w.Path()
	v.schema(p+".input", w.Input, true)
	v.schema(p+".output.schema", w.Output.Schema, false)
	v.duration(p+".limits.timeout", w.Limits.Timeout)
	v.budgetRefs(p+".budgets", w.Budgets)
	w.Walk(func(sp string, s *Step) {
		if s.Agent != "" {
			v.ref(sp+".agent", KindAgent, s.Agent)
		}
		if s.Team != "" {
			v.ref(sp+".team", KindTeam, s.Team)
		}
		if s.Workflow != "" {
			if s.Workflow == w.Name {
				v.errorf(sp+".workflow", "workflow %q cannot run itself", w.Name)
			} else {
				v.ref(sp+".workflow", KindWorkflow, s.Workflow)
			}
		}
		if s.Router != nil && s.Router.Agent != "" {
			v.ref(sp+".router.agent", KindAgent, s.Router.Agent)
		}
		v.nonNegative(sp+".retries", s.Retries)
		v.duration(sp+".timeout", s.Timeout)
		if s.Approval != nil {
			v.approvers(sp+".approval.approvers", s.Approval.Approvers)
			v.duration(sp+".approval.timeout", s.Approval.Timeout)
		}
	})
}

// workflowRefs returns the workflows w runs as nested steps, with their paths.
func (w *Workflow) workflowRefs() (names, paths []string) {
	w.Walk(func(p string, s *Step) {
		if s.Workflow != "" {
			names, paths = append(names, s.Workflow), append(paths, p+".workflow")
		}
	})
	return names, paths
}

// baseEnv declares the variables every workflow expression may use; message
// only exists without an input schema.
var baseEnv = sync.OnceValues(func() (map[bool]*expr.Env, error) {
	common := []expr.Var{
		{Name: "input", Type: expr.MapOf(expr.String, expr.Dyn)},
		{Name: "steps", Type: expr.MapOf(expr.String, expr.MapOf(expr.String, expr.Dyn))},
		{Name: "state", Type: expr.MapOf(expr.String, expr.Dyn)},
	}
	withSchema, err := expr.NewEnv(common...)
	if err != nil {
		return nil, err
	}
	noSchema, err := expr.NewEnv(append(common, expr.Var{Name: "message", Type: expr.String})...)
	if err != nil {
		return nil, err
	}
	return map[bool]*expr.Env{true: withSchema, false: noSchema}, nil
})

// env is the environment of the workflow's expressions. With an input schema
// of type object with properties, input is typed by it (see expr.Schema):
// troupe check then reports misspelt input fields (where the schema says
// additionalProperties: false) and type errors such as input.count + "x".
func (w *Workflow) env() (*expr.Env, error) {
	envs, err := baseEnv()
	if err != nil {
		return nil, err
	}
	props, _ := w.Input["properties"].(map[string]any)
	if w.Input["type"] != "object" || len(props) == 0 {
		return envs[w.Input != nil], nil
	}
	w.inputSchema = expr.NewSchema("input", w.Input)
	vars := envs[true].Vars()
	vars[0] = expr.SchemaVar("input", w.inputSchema) // in place, so messages list the variables as usual
	return expr.NewEnv(vars...)
}

// InputSchema is the CEL view of the input schema, or nil when input is
// untyped (no schema, or one without properties). The runner coerces the
// input with it, so integer fields hold ints as the checker assumed.
func (w *Workflow) InputSchema() *expr.Schema { return w.inputSchema }

// check compiles every expression and template of the workflow and checks
// what the document alone decides: step names, kinds, loops, and which steps
// each expression refers to. It runs once per decoded document, before the
// document is shared, so the compiled expressions it stores are immutable
// afterwards.
func (w *Workflow) check() Diagnostics {
	env, err := w.env()
	if err != nil {
		return Diagnostics{{Pos: w.pos, Path: w.Path(), Severity: Error, Msg: err.Error()}}
	}
	c := &wfChecker{w: w, steps: map[string]*stepInfo{}}
	c.index(w.Path()+".steps", w.Steps, nil)
	visible := c.sequence(w.Path()+".steps", w.Steps, scope{env: env, visible: map[string]bool{}})
	if w.Output.Template != "" {
		w.output = c.template(w.Path()+".output.template", w.Output.Template, scope{env: env, visible: visible}, "")
	}
	return c.diags
}

// stepInfo is where a step stands in the tree, for messages about references.
type stepInfo struct {
	path  string
	order int        // pre-order position in the document
	chain []ancestor // enclosing container steps, outermost first
}

// ancestor is a container step and which of its branches holds the step.
type ancestor struct {
	name, kind string
	branch     string
}

type wfChecker struct {
	w     *Workflow
	steps map[string]*stepInfo
	names []string
	diags Diagnostics
}

type scope struct {
	env     *expr.Env
	visible map[string]bool
	self    string // the step whose expressions are being checked
	selfOK  bool   // the step may refer to itself (set_state)
	inner   bool   // refers from inside self (until): self's body is visible
}

func (c *wfChecker) errorf(path, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{Pos: c.w.PosOf(path), Path: path, Severity: Error, Msg: fmt.Sprintf(format, args...)})
}

// errorAt reports a problem at byte offset off of the string at path.
func (c *wfChecker) errorAt(path, value string, off int, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{Pos: c.w.scalarPos(path, value, off), Path: path, Severity: Error, Msg: fmt.Sprintf(format, args...)})
}

// index records every step's place and reports bad and duplicated names and
// steps with no or several kinds.
func (c *wfChecker) index(path string, steps []Step, chain []ancestor) {
	for i := range steps {
		s := &steps[i]
		p := indexPath(path, i)
		switch {
		case s.Name == "":
			// reported as a missing required field
		case !validName(s.Name):
			c.errorf(p+".name", "invalid step name %q: use lower-case letters, digits, - and _ (expressions write steps.<name>, so _ reads best)", s.Name)
		case c.steps[s.Name] != nil:
			c.errorf(p+".name", "duplicate step name %q: also at %s (step names are unique across the whole workflow, nested steps included)", s.Name, c.w.PosOf(c.steps[s.Name].path+".name"))
		default:
			c.steps[s.Name] = &stepInfo{path: p, order: len(c.names), chain: chain}
			c.names = append(c.names, s.Name)
		}
		switch k := s.kinds(); len(k) {
		case 0:
			c.errorf(p, "step %q does nothing: give it one of %s", s.Name, strings.Join(StepKinds, ", "))
		case 1:
		default:
			c.errorf(p, "step %q has several kinds (%s): give it exactly one", s.Name, strings.Join(k, ", "))
		}
		in := func(kind, branch string) []ancestor {
			return append(slices.Clip(chain), ancestor{name: s.Name, kind: kind, branch: branch})
		}
		for j := range s.Parallel {
			c.index(p+".parallel", s.Parallel[j:j+1], in(StepParallel, fmt.Sprint(j)))
		}
		if s.Condition != nil {
			c.index(p+".condition.then", s.Condition.Then, in(StepCondition, "then"))
			c.index(p+".condition.else", s.Condition.Else, in(StepCondition, "else"))
		}
		if s.Loop != nil {
			c.index(p+".loop.steps", s.Loop.Steps, in(StepLoop, ""))
		}
		if s.Router != nil {
			for j := range s.Router.Choices {
				c.index(p+".router.choices", s.Router.Choices[j:j+1], in(StepRouter, fmt.Sprint(j)))
			}
		}
	}
}

// sequence checks steps run one after another, starting with the steps in
// sc.visible finished, and returns the steps finished after the last one.
func (c *wfChecker) sequence(path string, steps []Step, sc scope) map[string]bool {
	visible := sc.visible
	for i := range steps {
		visible = c.step(indexPath(path, i), &steps[i], scope{env: sc.env, visible: visible})
	}
	return visible
}

// with returns a copy of visible with names added.
func with(visible map[string]bool, names ...string) map[string]bool {
	out := make(map[string]bool, len(visible)+len(names))
	for k := range visible {
		out[k] = true
	}
	for _, n := range names {
		if n != "" {
			out[n] = true
		}
	}
	return out
}

// step checks one step and returns the steps finished after it.
func (c *wfChecker) step(p string, s *Step, sc scope) map[string]bool {
	sc.self = s.Name
	x := &s.compiled
	kind := s.Kind()
	if s.Input != "" {
		if kind != StepAgent && kind != StepTeam && kind != StepWorkflow && kind != "" {
			c.errorf(p+".input", "input applies to agent, team and workflow steps, not to a %s step", kind)
		} else {
			x.input = c.template(p+".input", s.Input, sc, "")
		}
	}
	after := with(sc.visible, s.Name)
	switch {
	case s.Parallel != nil:
		if len(s.Parallel) == 0 {
			c.errorf(p+".parallel", "parallel lists no steps: give it at least one")
		}
		after = c.parallel(p, s, sc, after)
	case s.Condition != nil:
		cp := p + ".condition"
		x.cond = c.expression(cp+".if", s.Condition.If, sc, expr.Bool, "a condition must be true or false")
		c.sequence(cp+".then", s.Condition.Then, scope{env: sc.env, visible: sc.visible})
		c.sequence(cp+".else", s.Condition.Else, scope{env: sc.env, visible: sc.visible})
	case s.Loop != nil:
		c.loop(p, s, sc)
	case s.Router != nil:
		rp := p + ".router"
		r := s.Router
		switch {
		case r.Expression == "" && r.Agent == "":
			c.errorf(rp, "a router needs expression (CEL giving a choice name) or agent (answering one)")
		case r.Expression != "" && r.Agent != "":
			c.errorf(rp, "write expression or agent, not both")
		case r.Expression != "":
			x.route = c.expression(rp+".expression", r.Expression, sc, expr.String, "a router expression must give a choice name (a string)")
		}
		for i := range r.Choices {
			c.step(indexPath(rp+".choices", i), &r.Choices[i], scope{env: sc.env, visible: sc.visible})
		}
	case s.Approval != nil:
		if s.Approval.Message != "" {
			x.message = c.template(p+".approval.message", s.Approval.Message, sc, "")
		}
	}
	if len(s.SetState) > 0 {
		x.setState = map[string]*expr.Expr{}
		own := scope{env: sc.env, visible: after, self: s.Name, selfOK: true}
		for _, k := range sortedKeys(s.SetState) {
			if e := c.expression(keyPath(p+".set_state", k), s.SetState[k], own, nil, ""); e != nil {
				x.setState[k] = e
			}
		}
	}
	return after
}

// parallel checks the branches of a parallel step (each sees only what was
// finished before the parallel) and returns what is finished after the join.
func (c *wfChecker) parallel(p string, s *Step, sc scope, after map[string]bool) map[string]bool {
	for i := range s.Parallel {
		branch := c.step(indexPath(p+".parallel", i), &s.Parallel[i], scope{env: sc.env, visible: sc.visible})
		for k := range branch {
			after[k] = true
		}
	}
	return after
}

func (c *wfChecker) loop(p string, s *Step, sc scope) {
	lp := p + ".loop"
	l := s.Loop
	x := &s.compiled
	switch {
	case l.Max <= 0:
		c.errorf(lp, "a loop needs max: the most iterations it may run, 1 to %d", MaxLoopIterations)
	case l.Max > MaxLoopIterations:
		c.errorf(lp+".max", "max %d is too large: a loop may run at most %d iterations", l.Max, MaxLoopIterations)
	}
	if l.As != "" && !identRE.MatchString(l.As) {
		c.errorf(lp+".as", "invalid loop variable %q: use letters, digits and _, starting with a letter", l.As)
		return
	}
	if slices.Contains([]string{"input", "steps", "state", "message", "iteration"}, l.LoopVar()) {
		c.errorf(lp+".as", "loop variable %q would hide the workflow variable of that name: choose another", l.LoopVar())
		return
	}
	if slices.Contains(celReserved, l.LoopVar()) {
		c.errorf(lp+".as", "loop variable %q is a reserved word in CEL: choose another", l.LoopVar())
		return
	}
	switch {
	case l.Over == "" && l.Until == "":
		c.errorf(lp, "a loop needs over (a CEL list to iterate over) or until (a CEL condition to stop on)")
	case l.Over != "" && l.Until != "":
		c.errorf(lp, "write over or until, not both")
	case l.Over != "":
		x.over = c.expression(lp+".over", l.Over, sc, expr.ListOf(expr.Dyn), "over must give a list")
	}
	env, err := sc.env.With(expr.Var{Name: l.LoopVar(), Type: expr.Dyn}, expr.Var{Name: "iteration", Type: expr.MapOf(expr.String, expr.Int)})
	if err != nil {
		c.errorf(lp, "%v", err)
		return
	}
	inner := c.sequence(lp+".steps", l.Steps, scope{env: env, visible: sc.visible})
	if l.Until != "" {
		x.until = c.expression(lp+".until", l.Until, scope{env: env, visible: inner, self: s.Name, inner: true}, expr.Bool, "until must be true or false")
	}
}

// identRE matches a loop variable: a CEL identifier.
var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// celReserved are CEL's reserved words, which cannot name a variable.
var celReserved = []string{"as", "break", "const", "continue", "else", "for", "function", "if", "import", "in", "let", "loop", "package", "namespace", "return", "var", "void", "while", "true", "false", "null"}

// expression compiles a CEL expression at path and checks its type and its
// step references; want nil accepts any type.
func (c *wfChecker) expression(path, src string, sc scope, want *expr.Type, wantMsg string) *expr.Expr {
	if strings.TrimSpace(src) == "" {
		c.errorf(path, "empty expression")
		return nil
	}
	x, err := sc.env.Compile(src)
	if err != nil {
		c.exprError(path, src, 0, err, sc.env)
		return nil
	}
	if want != nil && !x.Returns(want) {
		c.errorAt(path, src, 0, "%s, got %s", wantMsg, x.TypeName())
		return nil
	}
	if !c.refs(path, src, 0, x.Refs("steps"), sc) {
		return nil
	}
	return x
}

// template compiles a {{ }} template at path and checks its step references.
func (c *wfChecker) template(path, src string, sc scope, _ string) *expr.Template {
	t, err := sc.env.CompileTemplate(src)
	if err != nil {
		c.exprError(path, src, 0, err, sc.env)
		return nil
	}
	if !c.refs(path, src, 0, t.Refs("steps"), sc) {
		return nil
	}
	return t
}

func (c *wfChecker) exprError(path, src string, base int, err error, env *expr.Env) {
	if e, ok := err.(*expr.Error); ok {
		msg := e.Msg
		if strings.HasPrefix(msg, "undeclared reference") {
			var names []string
			for _, v := range env.Vars() {
				names = append(names, v.Name)
			}
			msg += "; the variables here are " + strings.Join(names, ", ")
		}
		c.errorAt(path, src, base+e.Offset, "%s", msg)
		return
	}
	c.errorf(path, "%v", err)
}

// refs checks that every steps.<name> refers to a step finished whenever the
// expression is evaluated, and explains why not otherwise.
func (c *wfChecker) refs(path, src string, base int, refs []expr.Ref, sc scope) bool {
	ok := true
	for _, r := range refs {
		if msg := c.refProblem(r.Name, sc); msg != "" {
			c.errorAt(path, src, base+r.Offset, "%s", msg)
			ok = false
		}
	}
	return ok
}

func (c *wfChecker) refProblem(name string, sc scope) string {
	if sc.visible[name] && (name != sc.self || sc.selfOK) {
		return ""
	}
	target, known := c.steps[name]
	if !known {
		return fmt.Sprintf("unknown step %q%s", name, suggestionOnly(name, c.names))
	}
	if name == sc.self {
		return fmt.Sprintf("step %q refers to its own output, which does not exist until it has run", name)
	}
	from := c.steps[sc.self]
	if from == nil {
		// The workflow's output: a step hidden inside a container.
		return c.hidden(target, nil)
	}
	for _, a := range from.chain {
		if a.name == name {
			return fmt.Sprintf("step %q has not finished when this step runs: it contains it", name)
		}
	}
	// The innermost container holding both.
	shared := 0
	for shared < len(target.chain) && shared < len(from.chain) && target.chain[shared] == from.chain[shared] {
		shared++
	}
	if shared < len(target.chain) && shared < len(from.chain) &&
		target.chain[shared].name == from.chain[shared].name {
		a := target.chain[shared]
		switch a.kind {
		case StepParallel:
			return fmt.Sprintf("step %q is in another branch of parallel %q: branches run at the same time and cannot see each other", name, a.name)
		case StepCondition:
			return fmt.Sprintf("step %q is in the other branch of condition %q: only one branch runs", name, a.name)
		case StepRouter:
			return fmt.Sprintf("step %q is another choice of router %q: only one choice runs", name, a.name)
		}
	}
	if target.order > from.order {
		return fmt.Sprintf("step %q runs after this one: a step can only use the output of steps before it", name)
	}
	return c.hidden(target, from.chain[:min(shared, len(from.chain))])
}

// hidden explains why a step inside a condition, loop or router is not
// visible from outside it.
func (c *wfChecker) hidden(target *stepInfo, common []ancestor) string {
	for _, a := range target.chain[len(common):] {
		if a.kind == StepParallel {
			continue
		}
		return fmt.Sprintf("step %q is inside %s %q and is not visible outside it: use steps.%s.output instead", c.names[target.order], a.kind, a.name, a.name)
	}
	return fmt.Sprintf("step %q is not visible here", c.names[target.order])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// scalarPos returns the position of byte offset off within the string value
// at path: exact for one-line plain and quoted scalars written as is, the
// right line for block scalars, the scalar itself otherwise (values from the
// environment, escapes, folded text).
func (m *Meta) scalarPos(path, value string, off int) Pos {
	pos := m.PosOf(path)
	if off <= 0 || off > len(value) || m.Interpolated(path) || pos.Line == 0 {
		return pos
	}
	style := m.styles[path]
	before := value[:off]
	switch {
	case style&(yaml.LiteralStyle) != 0:
		pos.Line += 1 + strings.Count(before, "\n")
		pos.Col = 0
		return pos
	case strings.Contains(value, "\n"):
		return pos
	case style&yaml.DoubleQuotedStyle != 0:
		if strings.ContainsAny(value, "\\\"") {
			return pos
		}
		pos.Col++
	case style&yaml.SingleQuotedStyle != 0:
		if strings.Contains(value, "'") {
			return pos
		}
		pos.Col++
	case style != 0:
		return pos // folded
	}
	pos.Col += utf8.RuneCountInString(before)
	return pos
}
