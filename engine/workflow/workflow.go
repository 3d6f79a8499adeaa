// Package workflow runs compiled workflows (engine.Workflow): their steps in
// order, with parallel fan-out, conditions, loops and routers, each finished
// step checkpointed before the next one starts so that a run interrupted by a
// crash resumes after its last finished step.
//
// A Runner is an agent.Runner, so the run service (engine/session) handles a
// workflow run as it handles agents and teams: persistence, streaming,
// background runs, cancel and resume. The agent, team and nested workflow
// runs of its steps stream inside the workflow's stream, tagged with their
// step, one level deeper, and are stored as child runs.
package workflow

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/expr"
)

// Approval outcomes: a run reaching an approval step without a decision
// pauses; a rejection ends the run CANCELLED.
var (
	errPaused   = errors.New("waiting for approval")
	errRejected = errors.New("rejected by the reviewer")
)

// Decision is an approval step's output, written by whoever continues the
// paused run (POST …/continue).
type Decision struct {
	Approved bool   `json:"approved"`
	Comment  string `json:"comment,omitempty"`
}

// Checkpoint is the recorded state of one step execution of one run: a step
// of the top-level list, a parallel branch, or a step of one loop iteration.
type Checkpoint struct {
	RunID string
	// Path identifies the execution within the run: the step's name,
	// prefixed by its enclosing loops' "name[i]/" and nested workflows'
	// "name/" (names are unique within one workflow, not across nesting).
	Path      string
	Iteration int // the innermost loop iteration, 0 outside loops
	// Status is RUNNING while it executes, then COMPLETED, ERROR or
	// CANCELLED; PAUSED for an approval step waiting for its decision.
	Status   event.Status
	Input    string
	Output   json.RawMessage // the step's output as JSON, when COMPLETED
	Error    string
	Attempts int // executions started, the interrupted ones included
	// Metrics is the usage of the runs the step started itself: its
	// agent's or team's (every attempt's, those of earlier executions of
	// the workflow run included), its nested workflow's (whose own steps'
	// usage it sums), a router's agent's; not that of the steps inside a
	// container, which have their own checkpoints. A resumed run adds the
	// Metrics of the steps it restores, so its stored usage is the whole
	// run's.
	Metrics   event.Metrics
	StartedAt time.Time
	UpdatedAt time.Time
}

// Name returns the step name of the checkpoint's path.
func (c Checkpoint) Name() string {
	return c.Path[strings.LastIndexByte(c.Path, '/')+1:]
}

// HeldRun returns the run a PAUSED agent or team step waits on (paused on
// tool decisions), "" for any other checkpoint (an approval step waiting
// for its decision among them).
func (c Checkpoint) HeldRun() string {
	if c.Status != event.StatusPaused || len(c.Output) == 0 {
		return ""
	}
	var h heldOutput
	_ = json.Unmarshal(c.Output, &h) // not JSON: not a held step
	return h.ChildRunID
}

// Checkpoints is where a runner records its steps. store.DB implements it.
// Methods are called concurrently (parallel branches).
type Checkpoints interface {
	// Steps returns the checkpoints of a run in the order they were first
	// written.
	Steps(ctx context.Context, runID string) ([]Checkpoint, error)
	// SaveStep inserts or replaces the checkpoint (RunID, Path).
	SaveStep(ctx context.Context, c Checkpoint) error
}

// Options configure runners.
type Options struct {
	// Checkpoints records steps; nil keeps them in memory only (a run
	// interrupted by a crash then starts again from its first step).
	Checkpoints Checkpoints
	// Runs reads the runs of steps that paused on tool decisions; nil
	// fails such steps when the workflow resumes.
	Runs Runs
	Now  func() time.Time
}

// Runner runs one compiled workflow. Immutable and safe for concurrent runs.
type Runner struct {
	w    *engine.Workflow
	opts Options
}

var _ agent.Runner = (*Runner)(nil)

// New returns the runner of w.
func New(w *engine.Workflow, opts Options) *Runner {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Runner{w: w, opts: opts}
}

// Name returns the workflow's name.
func (r *Runner) Name() string { return r.w.Name() }

// Description returns the workflow's description.
func (r *Runner) Description() string { return r.w.Spec.Description }

// ModelInfo returns nothing: a workflow has no model of its own.
func (r *Runner) ModelInfo() (modelID, provider string) { return "", "" }

// HistoryRuns returns zero: a workflow run depends on its input only.
func (r *Runner) HistoryRuns() int { return 0 }

// Workflow returns the compiled workflow.
func (r *Runner) Workflow() *engine.Workflow { return r.w }

// run is the state of one workflow run.
type run struct {
	r    *Runner
	in   agent.Input
	emit func(event.Event)
	cps  Checkpoints

	emitMu sync.Mutex

	mu      sync.Mutex
	input   map[string]any
	steps   map[string]any        // name -> {"output", "status"}
	state   map[string]any        // set_state
	done    map[string]Checkpoint // by path, as found at the start
	members []*agent.Result       // child runs
	// carried is usage that is no member of this execution: restored
	// steps', earlier executions' attempts of steps run again, and held
	// steps' runs that continued on their own.
	carried event.Metrics
	paused  string // the approval message the run paused at
	// pending are the approval steps the run paused at, as inbox needs.
	pending []approval.Need
	// stateSet: a set_state ran, so the session's state is saved.
	stateSet bool
	seq      atomic.Int64
}

// scope is where a step runs: its path prefix, its loop variables and
// iteration.
type scope struct {
	prefix    string
	iteration int
	loopVars  map[string]any
}

func (x *run) send(e event.Event) {
	x.emitMu.Lock()
	defer x.emitMu.Unlock()
	x.emit(e)
}

func (x *run) event(typ event.Type, st *engine.WorkflowStep, sc scope) event.Event {
	e := event.Event{Type: typ, RunID: x.in.RunID, SessionID: x.in.SessionID, WorkflowID: x.r.Name(), CreatedAt: x.r.opts.Now(), Iteration: sc.iteration}
	if st != nil {
		idx := st.Index
		e.Step, e.StepType, e.StepID, e.StepIndex = st.Name, st.Kind, sc.prefix+st.Name, &idx
		if typ == event.LoopIterationStarted || typ == event.LoopIterationCompleted {
			// An iteration's events are the loop's, in the iteration's
			// scope: its path "loop[i]" and its index i.
			idx = sc.iteration
			e.StepID = strings.TrimSuffix(sc.prefix, "/")
		}
	}
	return e
}

// vars returns the variables of expressions, a copy safe to read while
// parallel branches finish.
func (x *run) vars(sc scope) expr.Vars {
	x.mu.Lock()
	steps := make(map[string]any, len(x.steps))
	for k, v := range x.steps {
		steps[k] = v
	}
	state := make(map[string]any, len(x.state))
	for k, v := range x.state {
		state[k] = v
	}
	x.mu.Unlock()
	v := expr.Vars{"input": x.input, "steps": steps, "state": state}
	if x.r.w.Spec.Input == nil {
		m, _ := x.input["message"].(string)
		v["message"] = m
	}
	for k, val := range sc.loopVars {
		v[k] = val
	}
	return v
}

// startBudgeted runs the workflow under its budgets, which then govern every
// model call of its steps (their agents check the budgets in ctx).
//
// Each execution opens them anew, reading the counters as they stand, so a
// run resumed after a pause or a crash is checked against what its earlier
// executions spent. Steps restored from checkpoints call no model and are
// not recorded again: their usage reached the counters when they ran (the
// run's stored metrics add it, the counters must not). A held step's run
// that continued on its own (after its tool decisions) ran outside this
// workflow's execution: its usage after the pause counts against its own
// agent's or team's budgets only, not the workflow's.
func (x *run) startBudgeted(ctx context.Context) (string, error) {
	ctx, tracker, err := budget.Open(ctx, x.r.w.Budgets, budget.Subject{RunID: x.in.RunID, SessionID: x.in.SessionID, UserID: x.in.UserID, Runner: x.r.Name()})
	if err != nil {
		return "", err
	}
	defer func() { _ = tracker.Close(ctx) }() // best effort: the run has ended either way
	return x.start(ctx)
}

func (x *run) finished(name string, output any, status event.Status) {
	x.mu.Lock()
	x.steps[name] = map[string]any{"output": output, "status": string(status)}
	x.mu.Unlock()
}

// Execute implements agent.Runner.
func (r *Runner) Execute(ctx context.Context, in agent.Input, emit func(event.Event)) *agent.Result {
	start := r.opts.Now()
	x := &run{r: r, in: in, emit: emit, cps: r.opts.Checkpoints, steps: map[string]any{}, state: make(map[string]any, len(in.State)), done: map[string]Checkpoint{}}
	if len(in.State) > 0 {
		// A copy, with JSON's whole numbers as CEL's ints (the state was
		// stored as JSON).
		if b, err := json.Marshal(in.State); err == nil {
			if m, ok := decode(b).(map[string]any); ok {
				x.state = m
			}
		}
	}
	if x.cps == nil {
		x.cps = &Memory{}
	}
	started := x.event(event.RunStarted, nil, scope{})
	x.send(started)
	out, err := x.startBudgeted(ctx)
	res := &agent.Result{RunID: in.RunID, Input: in.Message, Runner: r.Name()}
	x.mu.Lock()
	res.Members = x.members
	// A workflow run costs what its steps cost, over all its executions:
	// the stored run's metrics are replaced by each execution's.
	res.Metrics.Add(x.carried)
	for _, m := range res.Members {
		res.Metrics.Add(m.Metrics)
	}
	x.mu.Unlock()
	res.Metrics.Duration = r.opts.Now().Sub(start)
	x.mu.Lock()
	if x.stateSet && !errors.Is(err, errPaused) {
		// A paused run saves no state: its continuation replays the
		// set_state of its finished steps from the session's state, which
		// must not hold them already.
		res.State = x.state
	}
	x.mu.Unlock()
	e := x.event(event.RunCompleted, nil, scope{})
	switch {
	case err == nil:
		res.Status, res.Content = event.StatusCompleted, out
		e.Content = out
	case errors.Is(err, errPaused):
		// Not an error: the run ends for now, its reviewer decides.
		res.Status, res.Content = event.StatusPaused, x.paused
		x.mu.Lock()
		res.Pending = x.pending
		x.mu.Unlock()
		e.Type, e.Content = event.RunPaused, x.paused
	case errors.Is(err, errRejected):
		res.Status, res.Err = event.StatusCancelled, err
		e.Type, e.Content = event.RunCancelled, err.Error()
	case ctx.Err() != nil:
		res.Status, res.Err = event.StatusCancelled, context.Canceled
		e.Type, e.Content = event.RunCancelled, "run cancelled"
	default:
		res.Status, res.Err, res.ErrorKind = event.StatusError, err, "workflow"
		if errors.Is(err, context.DeadlineExceeded) {
			res.ErrorKind = "timeout"
		}
		e.Type, e.Content, e.ErrorKind = event.RunError, err.Error(), res.ErrorKind
	}
	m := res.Metrics
	e.Metrics = &m
	x.send(e)
	return res
}

// start decodes the input, loads the checkpoints of an interrupted run and
// runs the steps.
func (x *run) start(ctx context.Context) (string, error) {
	w := x.r.w
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = spec.DefaultWorkflowTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("workflow %s ran longer than its timeout %s: %w", w.Name(), timeout, context.DeadlineExceeded))
	defer cancel()
	if w.Spec.Input != nil {
		if err := json.Unmarshal([]byte(x.in.Message), &x.input); err != nil || x.input == nil {
			return "", fmt.Errorf("workflow %s takes a JSON object as input (its input schema): send input as an object", w.Name())
		}
		// Runs that did not come through the run route (triggers, resumed
		// runs) are checked here; JSON numbers in integer fields become the
		// ints their expressions were checked against.
		in, err := w.CheckInput(x.input)
		if err != nil {
			return "", err
		}
		x.input = in
	} else {
		x.input = map[string]any{"message": x.in.Message}
	}
	cps, err := x.cps.Steps(ctx, x.in.RunID)
	if err != nil {
		return "", fmt.Errorf("read the run's checkpoints: %w", err)
	}
	for _, c := range cps {
		x.done[c.Path] = c
		if c.Status == event.StatusCompleted && !strings.Contains(c.Path, "/") {
			// Top-level steps' outputs, for the steps after them. Inner
			// steps are restored as their containers run again.
			x.finished(c.Name(), decode(c.Output), c.Status)
		}
	}
	last, err := x.sequence(ctx, w.Steps, scope{})
	if err != nil {
		return "", err
	}
	out := last
	if w.Output != nil {
		if out, err = w.Output.Render(ctx, x.vars(scope{})); err != nil {
			return "", err
		}
	}
	if w.OutputSchema != nil {
		return structured(w, out)
	}
	return text(out), nil
}

// structured checks the output against the workflow's output schema and
// returns it as JSON: the output is the JSON a template rendered or the
// last step gave (an agent with output_schema gives it decoded already).
func structured(w *engine.Workflow, out any) (string, error) {
	if s, ok := out.(string); ok {
		if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &out); err != nil {
			return "", fmt.Errorf("workflow %s: the output is not JSON, but output.schema requires it: %w (give the last step an agent with output_schema, or an output template that renders JSON)", w.Name(), err)
		}
	}
	if err := w.OutputSchema.Validate(out); err != nil {
		return "", fmt.Errorf("workflow %s: the output does not match output.schema: %s", w.Name(), engine.SchemaViolation(err))
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("workflow %s: encode the output: %w", w.Name(), err)
	}
	return string(b), nil
}

func (x *run) sequence(ctx context.Context, steps []*engine.WorkflowStep, sc scope) (any, error) {
	var last any
	for _, st := range steps {
		out, err := x.step(ctx, st, sc)
		if err != nil {
			return nil, err
		}
		last = out
	}
	return last, nil
}

// step runs one step unless its checkpoint says it completed, then records
// its output (checkpoint first, then the variables later steps read).
func (x *run) step(ctx context.Context, st *engine.WorkflowStep, sc scope) (any, error) {
	path := sc.prefix + st.Name
	x.mu.Lock()
	cp, seen := x.done[path]
	x.mu.Unlock()
	if seen && cp.Status == event.StatusCompleted {
		x.carry(cp.Metrics) // it ran in an earlier execution
		out := decode(cp.Output)
		if st.Kind == spec.StepApproval {
			var d Decision
			_ = json.Unmarshal(cp.Output, &d)
			if !d.Approved {
				if d.Comment != "" {
					return nil, fmt.Errorf("step %s: %w: %s", st.Name, errRejected, d.Comment)
				}
				return nil, fmt.Errorf("step %s: %w", st.Name, errRejected)
			}
		}
		if err := x.replay(ctx, st, sc, out); err != nil {
			return nil, err
		}
		return out, nil
	}
	attempts := cp.Attempts
	stepStart := x.r.opts.Now()
	if seen && !cp.StartedAt.IsZero() {
		stepStart = cp.StartedAt // an interrupted execution: the step started then
	}
	x.send(x.event(event.StepStarted, st, sc))
	if st.Kind == spec.StepApproval {
		return nil, x.pause(ctx, st, sc, path, stepStart)
	}
	// use is the step's own usage (Checkpoint.Metrics), carried over from
	// the attempts of earlier executions: those that failed, or held the
	// step. An attempt cut off by a crash was never recorded: its usage is
	// lost with its process. A nested workflow's run sums its own steps'
	// checkpoints, so its latest result is all of its usage.
	use := &stepUsage{}
	if seen && st.Kind != spec.StepWorkflow {
		use.sum = cp.Metrics
		x.carry(cp.Metrics)
	}
	var out any
	var input string
	var err error
	held := seen && cp.Status == event.StatusPaused && (st.Kind == spec.StepAgent || st.Kind == spec.StepTeam)
	if held {
		// Its agent or team run waited for tool decisions: its result,
		// once it ran on, is the step's; no new attempt.
		input = cp.Input
		out, err = x.heldResult(ctx, st, cp, use)
	}
	for !held {
		attempts++
		if err = x.cps.SaveStep(ctx, Checkpoint{RunID: x.in.RunID, Path: path, Iteration: sc.iteration, Status: event.StatusRunning, Attempts: attempts, Metrics: use.total(), StartedAt: stepStart, UpdatedAt: x.r.opts.Now()}); err != nil {
			return nil, fmt.Errorf("step %s: checkpoint: %w", st.Name, err)
		}
		out, input, err = x.once(ctx, st, sc, path, attempts, use)
		_, paused := errors.AsType[*heldError](err)
		if err == nil || paused || ctx.Err() != nil || attempts > st.Retries || !retryable(st) {
			break
		}
	}
	if err == nil && len(st.SetState) > 0 {
		x.finished(st.Name, out, event.StatusCompleted) // set_state may read the step itself
		err = x.setState(ctx, st, sc)
	}
	if h, ok := errors.AsType[*heldError](err); ok {
		// Its agent or team run is PAUSED on tool calls: so is the
		// workflow, until that run completes (its approvals are the
		// child run's, in the inbox).
		raw, _ := json.Marshal(heldOutput{ChildRunID: h.runID})
		if serr := x.cps.SaveStep(ctx, Checkpoint{RunID: x.in.RunID, Path: path, Iteration: sc.iteration, Status: event.StatusPaused, Input: input,
			Output: raw, Attempts: attempts, Metrics: use.total(), StartedAt: stepStart, UpdatedAt: x.r.opts.Now()}); serr != nil {
			return nil, fmt.Errorf("step %s: checkpoint: %w", st.Name, serr)
		}
		x.mu.Lock()
		x.paused = fmt.Sprintf("Step %s waits for decisions on the tool calls of %s run %s: decide them in the approvals inbox or through that run's continue route", st.Name, st.Kind, h.runID)
		x.mu.Unlock()
		return nil, fmt.Errorf("step %s: %w", st.Name, errPaused)
	}
	if errors.Is(err, errPaused) {
		// A step inside this one waits for approval: this one stays
		// RUNNING, to run again (its finished steps skipped) once continued.
		return nil, err
	}
	c := Checkpoint{RunID: x.in.RunID, Path: path, Iteration: sc.iteration, Input: input, Attempts: attempts, Metrics: use.total(), StartedAt: stepStart, UpdatedAt: x.r.opts.Now()}
	if err != nil {
		c.Status, c.Error = event.StatusError, err.Error()
		if ctx.Err() != nil {
			c.Status = event.StatusCancelled
		}
		// Best effort: the run ends anyway, and a missing record only means
		// the step is found RUNNING (and run again) by a resume.
		_ = x.cps.SaveStep(context.WithoutCancel(ctx), c)
		e := x.event(event.StepError, st, sc)
		e.Content = err.Error()
		x.send(e)
		return nil, fmt.Errorf("step %s: %w", st.Name, err)
	}
	raw, jerr := json.Marshal(out)
	if jerr != nil {
		return nil, fmt.Errorf("step %s: output: %w", st.Name, jerr)
	}
	c.Status, c.Output = event.StatusCompleted, raw
	if err := x.cps.SaveStep(ctx, c); err != nil {
		return nil, fmt.Errorf("step %s: checkpoint: %w", st.Name, err)
	}
	x.finished(st.Name, out, event.StatusCompleted)
	e := x.event(event.StepCompleted, st, sc)
	e.Content = text(out)
	x.send(e)
	return out, nil
}

// replay restores a completed step without running it: its output, and,
// in the order they ran, the outputs and set_state of the steps inside it
// (parallel branches, the condition's branch that ran, each loop
// iteration's body, the router's choice), then its own set_state. State is
// not checkpointed: replaying set_state from the same outputs gives the
// state an uninterrupted run had.
func (x *run) replay(ctx context.Context, st *engine.WorkflowStep, sc scope, out any) error {
	inner := func(steps []*engine.WorkflowStep, sc scope) error {
		for _, s := range steps {
			x.mu.Lock()
			c, ok := x.done[sc.prefix+s.Name]
			x.mu.Unlock()
			if !ok || c.Status != event.StatusCompleted {
				continue // a branch that did not run
			}
			x.carry(c.Metrics)
			if err := x.replay(ctx, s, sc, decode(c.Output)); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	switch st.Kind {
	case spec.StepParallel:
		err = inner(st.Parallel, sc)
	case spec.StepCondition:
		err = inner(append(slices.Clip(st.Then), st.Else...), sc)
	case spec.StepRouter:
		err = inner(st.Choices, sc)
	case spec.StepLoop:
		outs, _ := out.([]any)
		var items []any
		if st.Over != nil {
			// Best effort: the list as the loop saw it, for set_state
			// reading the loop variable.
			items, _ = st.Over.EvalList(ctx, x.vars(sc))
		}
		for i := range outs {
			isc := x.iteration(st, sc, i, items)
			if err = inner(st.Body, isc); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	x.finished(st.Name, out, event.StatusCompleted)
	if err := x.setState(ctx, st, sc); err != nil {
		return fmt.Errorf("step %s: %w", st.Name, err)
	}
	return nil
}

// pause records an approval step waiting for its decision and ends the
// run's execution: the run is PAUSED until continued.
func (x *run) pause(ctx context.Context, st *engine.WorkflowStep, sc scope, path string, started time.Time) error {
	msg := fmt.Sprintf("Approve step %s of workflow %s?", st.Name, x.r.Name())
	if st.Message != nil {
		var err error
		if msg, err = st.Message.Render(ctx, x.vars(sc)); err != nil {
			return fmt.Errorf("step %s: message: %w", st.Name, err)
		}
	}
	if err := x.cps.SaveStep(ctx, Checkpoint{RunID: x.in.RunID, Path: path, Iteration: sc.iteration, Status: event.StatusPaused,
		Input: msg, StartedAt: started, UpdatedAt: x.r.opts.Now()}); err != nil {
		return fmt.Errorf("step %s: checkpoint: %w", st.Name, err)
	}
	n := approval.Need{Exec: event.ToolExecution{ToolCallID: path, ToolName: path, RequiresConfirmation: true, Reason: msg,
		ApprovalID: StepApprovalID(x.in.RunID, path)}}
	if a := st.Spec.Approval; a != nil {
		n.Approvers, n.Timeout, n.Default = a.Approvers, a.Timeout.D(), a.Default
	}
	if n.Default == "" {
		n.Default = spec.DecisionReject
	}
	if len(n.Approvers.Scopes) == 0 && len(n.Approvers.Users) == 0 {
		n.Approvers.Scopes = []string{spec.DefaultApproverScope}
	}
	x.mu.Lock()
	x.paused = msg
	x.pending = append(x.pending, n)
	x.mu.Unlock()
	return fmt.Errorf("step %s: %w", st.Name, errPaused)
}

// setState writes a finished step's set_state: every expression sees the
// state as it was before the step, so their order does not matter.
func (x *run) setState(ctx context.Context, st *engine.WorkflowStep, sc scope) error {
	if len(st.SetState) == 0 {
		return nil
	}
	vars := x.vars(sc)
	vals := make(map[string]any, len(st.SetState))
	for k, e := range st.SetState {
		v, err := e.Eval(ctx, vars)
		if err != nil {
			return fmt.Errorf("set_state %s: %w", k, err)
		}
		vals[k] = v
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	next := make(map[string]any, len(x.state)+len(vals))
	for k, v := range x.state {
		next[k] = v
	}
	for k, v := range vals {
		next[k] = v
	}
	if len(next) > MaxStateKeys {
		return fmt.Errorf("set_state: the session state would hold %d keys, more than %d: write fewer keys or reuse them", len(next), MaxStateKeys)
	}
	if b, err := json.Marshal(next); err != nil {
		return fmt.Errorf("set_state: the state is not JSON: %w", err)
	} else if len(b) > MaxStateBytes {
		return fmt.Errorf("set_state: the session state would take %d bytes as JSON, more than %d: keep smaller values in it", len(b), MaxStateBytes)
	}
	x.state, x.stateSet = next, true
	return nil
}

// Bounds of a workflow session's key-value state.
const (
	MaxStateKeys  = agent.MaxStateKeys
	MaxStateBytes = agent.MaxStateBytes
)

// retryable reports whether a failed step may run again: leaf steps only;
// a container's own steps carry their own retries.
func retryable(st *engine.WorkflowStep) bool {
	switch st.Kind {
	case spec.StepAgent, spec.StepTeam, spec.StepWorkflow:
		return true
	}
	return false
}

// once executes a step: its input (for leaf steps) and its output.
func (x *run) once(ctx context.Context, st *engine.WorkflowStep, sc scope, path string, attempt int, use *stepUsage) (any, string, error) {
	if st.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, st.Timeout, fmt.Errorf("step %s ran longer than its timeout %s: %w", st.Name, st.Timeout, context.DeadlineExceeded))
		defer cancel()
	}
	switch st.Kind {
	case spec.StepAgent, spec.StepTeam, spec.StepWorkflow:
		input := x.in.Message
		if st.Input != nil {
			var err error
			if input, err = st.Input.Render(ctx, x.vars(sc)); err != nil {
				return nil, "", fmt.Errorf("input: %w", err)
			}
		}
		var runner agent.Runner
		switch {
		case st.Agent != nil:
			runner = st.Agent.Runner
		case st.Team != nil:
			runner = st.Team.Runner
		default:
			// A nested workflow checkpoints under this run, its paths
			// prefixed with the step's: its own run is stored only when
			// this one ends, and a resume must find its finished steps.
			opts := x.r.opts
			opts.Checkpoints = &nested{cps: x.cps, runID: x.in.RunID, prefix: path + "/"}
			runner = New(st.Workflow, opts)
		}
		if runner == nil {
			return nil, input, fmt.Errorf("%s %s cannot run here (compiled without a runtime)", st.Kind, st.Name)
		}
		res := x.child(ctx, runner, st, sc, path, attempt, input)
		switch {
		case st.Kind == spec.StepWorkflow:
			use.nested = res.Metrics // its latest execution sums all of its usage
		case res.Status != event.StatusPaused || res.Err != nil || len(res.Pending) == 0:
			use.sum.Add(res.Metrics)
			// A held run's usage is read whole once it has continued on
			// its own (heldResult), and is not part of the step's yet.
		}
		if res.Status == event.StatusPaused && st.Kind == spec.StepWorkflow {
			// An approval inside a nested workflow pauses this run too,
			// with its message; its checkpoint is under this run's.
			// Its pending steps are named by their paths in this run,
			// where their checkpoints are.
			x.mu.Lock()
			x.paused = res.Content
			for _, n := range res.Pending {
				n.Exec.ToolCallID, n.Exec.ToolName = path+"/"+n.Exec.ToolCallID, path+"/"+n.Exec.ToolName
				n.Exec.ApprovalID = StepApprovalID(x.in.RunID, n.Exec.ToolCallID)
				x.pending = append(x.pending, n)
			}
			x.mu.Unlock()
			return nil, input, errPaused
		}
		if res.Status == event.StatusPaused && res.Err == nil && len(res.Pending) > 0 && st.Kind != spec.StepWorkflow {
			return nil, input, &heldError{runID: res.RunID}
		}
		if res.Status != event.StatusCompleted {
			if err := context.Cause(ctx); err != nil {
				return nil, input, err
			}
			return nil, input, stepErr(res)
		}
		return stepOutput(st, res.Content), input, nil
	case spec.StepParallel:
		return x.parallel(ctx, st, sc)
	case spec.StepCondition:
		ok, err := st.If.EvalBool(ctx, x.vars(sc))
		if err != nil {
			return nil, "", err
		}
		e := x.event(event.ConditionExecutionStarted, st, sc)
		e.Content = fmt.Sprint(ok)
		x.send(e)
		branch := st.Else
		if ok {
			branch = st.Then
		}
		out, err := x.sequence(ctx, branch, sc)
		if err != nil {
			return nil, "", err
		}
		x.send(x.event(event.ConditionExecutionComplete, st, sc))
		return out, "", nil
	case spec.StepLoop:
		return x.loop(ctx, st, sc)
	case spec.StepRouter:
		return x.router(ctx, st, sc, path, attempt, use)
	}
	return nil, "", fmt.Errorf("step %s has an unknown kind %q", st.Name, st.Kind)
}

// child runs an agent, team or nested workflow for a step, forwarding its
// events tagged with the step, one level deeper.
func (x *run) child(ctx context.Context, runner agent.Runner, st *engine.WorkflowStep, sc scope, path string, attempt int, input string) *agent.Result {
	id := fmt.Sprintf("%s-%s", x.in.RunID, strings.NewReplacer("/", ".", "[", ".", "]", "").Replace(path))
	if st.Kind != spec.StepWorkflow || runner.Name() != st.Workflow.Name() {
		// Agents and teams start over on each attempt: a new child run.
		id = fmt.Sprintf("%s-%d", id, attempt)
	}
	// A nested workflow keeps one child run across attempts and resumes
	// (its checkpoints are under this run's): the same id, so the store
	// holds one child run, updated by each execution.
	in := agent.Input{
		Message:   input,
		RunID:     id,
		SessionID: x.in.SessionID,
		UserID:    x.in.UserID,
		Stream:    x.in.Stream,
	}
	res := runner.Execute(ctx, in, func(e event.Event) {
		switch {
		case e.Step == "":
			idx := st.Index
			e.Step, e.StepType, e.Iteration, e.StepID, e.StepIndex = st.Name, st.Kind, sc.iteration, path, &idx
		case e.StepID != "":
			// A nested workflow's step: its path in this run.
			e.StepID = path + "/" + e.StepID
		}
		if e.Member == "" {
			e.Member = runner.Name()
		}
		e.Depth++
		x.send(e)
	})
	if res.Runner == "" {
		res.Runner = runner.Name()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if i := slices.IndexFunc(x.members, func(m *agent.Result) bool { return m.RunID == res.RunID }); i >= 0 {
		x.members[i] = res // a nested workflow's retry: its latest execution
	} else {
		x.members = append(x.members, res)
	}
	return res
}

// parallel runs the branches at once; its output maps branch names to their
// outputs. The first failure cancels the other branches.
func (x *run) parallel(ctx context.Context, st *engine.WorkflowStep, sc scope) (any, string, error) {
	x.send(x.event(event.ParallelExecutionStarted, st, sc))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	outs := make([]any, len(st.Parallel))
	errs := make([]error, len(st.Parallel))
	var wg sync.WaitGroup
	for i, b := range st.Parallel {
		wg.Go(func() {
			outs[i], errs[i] = x.step(ctx, b, sc)
			if errs[i] != nil {
				cancel(errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if c := context.Cause(ctx); c != nil {
			return nil, "", c
		}
		return nil, "", err
	}
	out := make(map[string]any, len(outs))
	for i, b := range st.Parallel {
		out[b.Name] = outs[i]
	}
	x.send(x.event(event.ParallelExecutionCompleted, st, sc))
	return out, "", nil
}

// loop runs the body over a list or until a condition holds, at most Max
// times; its output is the list of the iterations' outputs.
func (x *run) loop(ctx context.Context, st *engine.WorkflowStep, sc scope) (any, string, error) {
	var items []any
	if st.Over != nil {
		var err error
		if items, err = st.Over.EvalList(ctx, x.vars(sc)); err != nil {
			return nil, "", err
		}
	}
	x.send(x.event(event.LoopExecutionStarted, st, sc))
	outs := []any{}
	for i := 0; i < st.Max; i++ {
		if st.Over != nil && i >= len(items) {
			break
		}
		inner := x.iteration(st, sc, i, items)
		x.send(x.event(event.LoopIterationStarted, st, inner))
		out, err := x.sequence(ctx, st.Body, inner)
		if err != nil {
			return nil, "", err
		}
		outs = append(outs, out)
		x.send(x.event(event.LoopIterationCompleted, st, inner))
		if st.Until != nil {
			stop, err := st.Until.EvalBool(ctx, x.vars(inner))
			if err != nil {
				return nil, "", err
			}
			if stop {
				break
			}
		}
	}
	x.send(x.event(event.LoopExecutionCompleted, st, sc))
	return outs, "", nil
}

// iteration returns the scope of a loop's iteration i.
func (x *run) iteration(st *engine.WorkflowStep, sc scope, i int, items []any) scope {
	inner := scope{prefix: fmt.Sprintf("%s%s[%d]/", sc.prefix, st.Name, i), iteration: i, loopVars: map[string]any{"iteration": map[string]any{"index": int64(i)}}}
	for k, v := range sc.loopVars {
		if _, ok := inner.loopVars[k]; !ok {
			inner.loopVars[k] = v
		}
	}
	if st.Over != nil && i < len(items) {
		inner.loopVars[st.As] = items[i]
	}
	return inner
}

// router runs the choice named by the expression or the router agent.
func (x *run) router(ctx context.Context, st *engine.WorkflowStep, sc scope, path string, attempt int, use *stepUsage) (any, string, error) {
	var name string
	if st.Route != nil {
		var err error
		if name, err = st.Route.EvalString(ctx, x.vars(sc)); err != nil {
			return nil, "", err
		}
	} else {
		if st.RouterAgent == nil || st.RouterAgent.Runner == nil {
			return nil, "", fmt.Errorf("router %s has no agent to ask", st.Name)
		}
		names := make([]string, len(st.Choices))
		for i, c := range st.Choices {
			names[i] = c.Name
		}
		ask := fmt.Sprintf("Choose the next step for this input. Answer with exactly one of: %s.\n\nInput:\n%s", strings.Join(names, ", "), x.in.Message)
		res := x.child(ctx, st.RouterAgent.Runner, st, sc, path+".router", attempt, ask)
		use.sum.Add(res.Metrics)
		if res.Status != event.StatusCompleted {
			return nil, "", fmt.Errorf("router agent %s: %w", st.RouterAgent.Name(), stepErr(res))
		}
		name = strings.Trim(strings.TrimSpace(res.Content), "\"'`.")
	}
	choice, ok := st.Choice(name)
	if !ok {
		names := make([]string, len(st.Choices))
		for i, c := range st.Choices {
			names[i] = c.Name
		}
		return nil, "", fmt.Errorf("router chose %q, which is not one of its choices (%s)", name, strings.Join(names, ", "))
	}
	e := x.event(event.RouterExecutionStarted, st, sc)
	e.Content = name
	x.send(e)
	out, err := x.step(ctx, choice, sc)
	if err != nil {
		return nil, "", err
	}
	x.send(x.event(event.RouterExecutionCompleted, st, sc))
	return out, "", nil
}

// text renders an output as a workflow's answer: strings as they are, the
// rest as JSON.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func decode(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	return normalize(v)
}

// normalize turns JSON numbers that are whole into int64, as CEL gives them
// before a checkpoint round trip.
func normalize(v any) any {
	switch v := v.(type) {
	case float64:
		if v == float64(int64(v)) {
			return int64(v)
		}
	case []any:
		for i := range v {
			v[i] = normalize(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = normalize(v[k])
		}
	}
	return v
}

// nested stores a nested workflow's checkpoints as its parent run's, under
// the nesting step's path.
type nested struct {
	cps    Checkpoints
	runID  string
	prefix string
}

var _ Checkpoints = (*nested)(nil)

func (n *nested) Steps(ctx context.Context, runID string) ([]Checkpoint, error) {
	all, err := n.cps.Steps(ctx, n.runID)
	if err != nil {
		return nil, err
	}
	var out []Checkpoint
	for _, c := range all {
		if rest, ok := strings.CutPrefix(c.Path, n.prefix); ok {
			c.RunID, c.Path = runID, rest
			out = append(out, c)
		}
	}
	return out, nil
}

func (n *nested) SaveStep(ctx context.Context, c Checkpoint) error {
	c.RunID, c.Path = n.runID, n.prefix+c.Path
	return n.cps.SaveStep(ctx, c)
}

// Memory keeps checkpoints in memory: for runs without a store (troupe run,
// tests).
type Memory struct {
	mu    sync.Mutex
	order []string
	cps   map[string]Checkpoint
}

var _ Checkpoints = (*Memory)(nil)

// Steps implements Checkpoints.
func (m *Memory) Steps(_ context.Context, runID string) ([]Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Checkpoint
	for _, k := range m.order {
		if c := m.cps[k]; c.RunID == runID {
			out = append(out, c)
		}
	}
	return out, nil
}

// SaveStep implements Checkpoints.
func (m *Memory) SaveStep(_ context.Context, c Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps = map[string]Checkpoint{}
	}
	k := c.RunID + "\x00" + c.Path
	if _, ok := m.cps[k]; !ok {
		m.order = append(m.order, k)
	}
	m.cps[k] = c
	return nil
}

// errHeldInStep ends a step whose run paused without saying on what (a
// runner that pauses must list its pending calls).
var errHeldInStep = errors.New("the step's run paused without pending tool calls to decide")

// stepErr is why a step's agent or team run did not complete.
func stepErr(res *agent.Result) error {
	if res.Status == event.StatusPaused && res.Err == nil {
		return errHeldInStep
	}
	return res.Err
}

// heldError reports a step's agent or team run PAUSED on tool calls that
// need a decision: the workflow pauses with it.
type heldError struct{ runID string }

func (e *heldError) Error() string { return fmt.Sprintf("run %s waits for tool decisions", e.runID) }

// heldOutput is the output of a PAUSED agent or team step's checkpoint: the
// child run it waits on.
type heldOutput struct {
	ChildRunID string `json:"child_run_id"`
}

// stepOutput is an agent or team step's output from its run's answer: an
// agent with output_schema gives the decoded JSON.
func stepOutput(st *engine.WorkflowStep, content string) any {
	if st.Agent != nil && st.Agent.Spec.OutputSchema != nil {
		var v any
		if err := json.Unmarshal([]byte(content), &v); err == nil {
			return v
		}
	}
	return content
}

// ChildRun is what a workflow reads of a step's run continued on its own.
type ChildRun struct {
	Status  event.Status
	Content string
	Error   string
	// Metrics is the run's usage, before its pause and after it.
	Metrics event.Metrics
}

// Runs reads the runs of steps that paused on tool decisions (store.DB
// through cmd/troupe's adapter).
type Runs interface {
	ChildRun(ctx context.Context, runID string) (*ChildRun, error)
}

// heldResult is the output of a step whose run paused on tool decisions,
// now that the workflow runs again: its run's answer once it completed;
// still paused (or not finished), the workflow pauses again.
func (x *run) heldResult(ctx context.Context, st *engine.WorkflowStep, cp Checkpoint, use *stepUsage) (any, error) {
	var h heldOutput
	if err := json.Unmarshal(cp.Output, &h); err != nil || h.ChildRunID == "" {
		return nil, fmt.Errorf("the paused step's checkpoint names no run to wait on")
	}
	if x.r.opts.Runs == nil {
		return nil, fmt.Errorf("run %s of the step waited for tool decisions, and this server cannot read it", h.ChildRunID)
	}
	c, err := x.r.opts.Runs.ChildRun(ctx, h.ChildRunID)
	if err != nil {
		return nil, fmt.Errorf("reading run %s of the step: %w", h.ChildRunID, err)
	}
	// Its usage counts for the workflow run (it is no member of this
	// execution): all of it once it has ended, the step's then; while it
	// still waits, the workflow run shows what it used so far. Its usage
	// was counted into its own agent's budgets as it ran, not the
	// workflow's: it continued outside the workflow's execution.
	x.carry(c.Metrics)
	switch c.Status {
	case event.StatusCompleted:
		// Stored already, completed, by its own execution: not one of this
		// execution's members.
		use.sum.Add(c.Metrics)
		return stepOutput(st, c.Content), nil
	case event.StatusError, event.StatusCancelled:
		use.sum.Add(c.Metrics)
		msg := c.Error
		if msg == "" {
			msg = strings.ToLower(string(c.Status))
		}
		return nil, fmt.Errorf("%s run %s: %s", st.Kind, h.ChildRunID, msg)
	}
	return nil, &heldError{runID: h.ChildRunID}
}

// StepApprovalID is the inbox id of the approval step at path of run runID:
// derived from both (in UUID form), so a run that pauses again at a step
// still waiting names the same record instead of adding one.
func StepApprovalID(runID, path string) string {
	h := sha256.Sum256([]byte(runID + "\x00" + path))
	h[6] = h[6]&0x0f | 0x80 // version 8: custom
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// stepUsage is a step's own usage (Checkpoint.Metrics) as it runs.
type stepUsage struct {
	sum    event.Metrics // agent, team and router-agent runs, every attempt
	nested event.Metrics // a nested workflow's latest run, which sums its attempts
}

func (u *stepUsage) total() event.Metrics {
	t := u.sum
	t.Add(u.nested)
	return t
}

// carry adds usage that no member of this execution holds to the run's.
func (x *run) carry(m event.Metrics) {
	x.mu.Lock()
	x.carried.Add(m)
	x.mu.Unlock()
}
