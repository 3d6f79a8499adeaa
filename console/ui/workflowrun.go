package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// maxWorkflowRuns is how many recent runs a workflow's page lists.
const maxWorkflowRuns = 10

// formFields generates the runner's form from a workflow's input schema:
// none (a message textarea) without a schema, else one field per
// top-level property, required ones first, each in name order. Scalars and
// enums get their own controls; anything else is typed as JSON.
func formFields(schema spec.JSONSchema) []view.FormField {
	if schema == nil {
		return nil
	}
	props, _ := schema["properties"].(map[string]any)
	required := map[string]bool{}
	if rs, ok := schema["required"].([]any); ok {
		for _, r := range rs {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	out := make([]view.FormField, 0, len(props))
	for name, p := range props {
		prop, _ := p.(map[string]any)
		f := view.FormField{Name: name, Label: name, Required: required[name], Type: "json"}
		if d, ok := prop["description"].(string); ok {
			f.Description = d
		}
		if enum, ok := prop["enum"].([]any); ok {
			f.Type = "select"
			for _, v := range enum {
				f.Options = append(f.Options, fmt.Sprint(v))
			}
		} else {
			switch prop["type"] {
			case "string":
				f.Type = "text"
			case "number":
				f.Type = "number"
			case "integer":
				f.Type = "integer"
			case "boolean":
				f.Type = "checkbox"
			}
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b view.FormField) int {
		if a.Required != b.Required {
			if a.Required {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// formInput turns the runner's form into the run's message: the message
// of a workflow without an input schema, else the input object as JSON,
// each field converted to its schema type. An enum field's value is sent
// as the enum's own value (number, boolean or string). Its errors say
// which field to fix.
func formInput(schema spec.JSONSchema, form func(string) string) (string, error) {
	if schema == nil {
		m := strings.TrimSpace(form("message"))
		if m == "" {
			return "", fmt.Errorf("type a message first")
		}
		return m, nil
	}
	props, _ := schema["properties"].(map[string]any)
	in := map[string]any{}
	for _, f := range formFields(schema) {
		v := strings.TrimSpace(form(f.FieldName()))
		if f.Type == "checkbox" {
			in[f.Name] = v == "true" || v == "on"
			continue
		}
		if v == "" {
			if f.Required {
				return "", fmt.Errorf("fill in %s: it is required", f.Name)
			}
			continue
		}
		switch f.Type {
		case "number":
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return "", fmt.Errorf("%s must be a number, got %q", f.Name, v)
			}
			in[f.Name] = n
		case "integer":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return "", fmt.Errorf("%s must be a whole number, got %q", f.Name, v)
			}
			in[f.Name] = n
		case "select":
			prop, _ := props[f.Name].(map[string]any)
			enum, _ := prop["enum"].([]any)
			i := slices.Index(f.Options, v)
			if i < 0 {
				return "", fmt.Errorf("%s must be one of %s, got %q", f.Name, strings.Join(f.Options, ", "), v)
			}
			in[f.Name] = enum[i]
		case "json":
			var x any
			if err := json.Unmarshal([]byte(v), &x); err != nil {
				return "", fmt.Errorf("%s must be JSON (%v)", f.Name, err)
			}
			in[f.Name] = x
		default:
			in[f.Name] = v
		}
	}
	b, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("input: %w", err)
	}
	return string(b), nil
}

// runWorkflow runs a workflow for the runner on its page: the chat's data
// path (the run service: same validation, persistence, tracing and
// metrics) streamed as the chat's events (see chat), plus one:
//
//	step {n, s}  the graph's nodes of step n take status s
//
// Step rows are appended when a step starts and replaced when it ends;
// nested agents' text streams into their step's row.
func (h *Handler) runWorkflow(c *gin.Context) {
	name := c.Param("id")
	w, ok := h.opts.Engine.Current().Workflow(name)
	if !ok {
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("workflow "+name+" is not served; see Workflows"))
		return
	}
	message, err := formInput(w.Spec.Input, c.PostForm)
	if err != nil {
		msg := err.Error()
		c.Data(http.StatusUnprocessableEntity, "text/plain; charset=utf-8", []byte(strings.ToUpper(msg[:1])+msg[1:]+"."))
		return
	}
	p := auth.Of(c)
	turn, err := h.opts.Runs.Start(c.Request.Context(), session.Params{Kind: spec.KindWorkflow, Name: name, Message: message,
		UserID: p.UserID(""), Stream: true, BoundUser: p.Bound()})
	if err != nil {
		h.fail(c, "the run", err)
		return
	}
	runID := turn.RunID()
	ratelimit.Started(c, runID)
	sw, closed := h.opts.Streams.Open(c.Writer)
	defer closed()
	ctx := c.Request.Context()
	st := &chatStream{w: sw, ctx: ctx, run: runID}
	st.send("start", map[string]string{"run": runID, "session": turn.SessionID(), "h": st.html(view.WorkflowRunStart(name, runID))})
	ws := &workflowStream{chatStream: st, workflow: w, started: map[string]time.Time{}, seen: map[string]bool{}}
	begun := time.Now()
	turn.Execute(ctx, func(e event.Event) {
		if e.Depth == 0 && e.Type.Terminal() {
			ws.end(e, time.Since(begun), p.Has(auth.ScopeAgentsRun))
			return
		}
		ws.event(e)
	})
}

// workflowStream renders a workflow run's events for the runner.
type workflowStream struct {
	*chatStream
	workflow *engine.Workflow
	mu       sync.Mutex // parallel branches report concurrently
	started  map[string]time.Time
	seen     map[string]bool // step names with a status, for the graph
	paused   string          // the key of the approval step waiting
}

func (ws *workflowStream) row(e event.Event, status string) view.StepRun {
	return view.StepRun{Run: ws.run, Key: view.StepKey(e.Step, e.Iteration), Name: e.Step, Kind: e.StepType, Status: status, Iteration: e.Iteration}
}

func (ws *workflowStream) status(step, status string) {
	ws.seen[step] = true
	ws.send("step", map[string]string{"n": step, "s": status})
}

func (ws *workflowStream) event(e event.Event) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	switch {
	case e.Depth == 0 && e.Type == event.StepStarted:
		r := ws.row(e, string(event.StatusRunning))
		ws.started[r.Key] = e.CreatedAt
		if e.StepType == spec.StepApproval {
			ws.paused = r.Key
		}
		ws.send("append", map[string]string{"t": "steps-" + ws.run, "h": ws.html(view.WorkflowStepRow(r))})
		ws.status(e.Step, r.Status)
	case e.Depth == 0 && (e.Type == event.StepCompleted || e.Type == event.StepError):
		r := ws.row(e, string(event.StatusCompleted))
		if e.Type == event.StepError {
			r.Status, r.Error = string(event.StatusError), e.Content
		} else {
			r.Output = e.Content
		}
		if t, ok := ws.started[r.Key]; ok {
			r.Duration = e.CreatedAt.Sub(t)
		}
		ws.send("replace", map[string]string{"t": r.ID(), "h": ws.html(view.WorkflowStepRow(r))})
		ws.status(e.Step, r.Status)
	case e.Depth > 0 && e.Type == event.RunContent && e.Content != "" && e.Step != "":
		// The agent of a step (or of a nested workflow's step, whose
		// row is its own step's if the runner shows it).
		if _, ok := ws.started[view.StepKey(e.Step, e.Iteration)]; ok {
			ws.send("text", map[string]string{"t": ws.row(e, "").OutputID(), "s": e.Content})
		}
	}
}

// end sends the outcome; steps that never started are shown SKIPPED once
// the run completed, and the approval step of a PAUSED run waiting.
func (ws *workflowStream) end(e event.Event, took time.Duration, canRun bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := view.WorkflowRunEnd{Workflow: ws.workflow.Name(), RunID: ws.run, Status: string(e.Type.Status()), Duration: took,
		TraceURL: "/ui/runs/" + ws.run + "/trace", CanRun: canRun}
	switch e.Type {
	case event.RunCompleted:
		out.Output = e.Content
		ws.workflow.Spec.Walk(func(_ string, s *spec.Step) {
			if !ws.seen[s.Name] {
				ws.status(s.Name, "SKIPPED")
			}
		})
	case event.RunError:
		out.Error = e.Content
	case event.RunCancelled:
		out.Error = "Cancelled."
	case event.RunPaused:
		out.Approval = e.Content
		if ws.paused != "" {
			name, _, _ := strings.Cut(ws.paused, "[")
			r := view.StepRun{Run: ws.run, Key: ws.paused, Name: name, Kind: spec.StepApproval, Status: string(event.StatusPaused)}
			ws.send("replace", map[string]string{"t": r.ID(), "h": ws.html(view.WorkflowStepRow(r))})
			ws.status(name, r.Status)
		}
	}
	ws.send("end", map[string]string{"t": "m-" + ws.run, "h": ws.html(view.WorkflowRunOutcome(out))})
}

// routeWorkflowRun loads the top-level run of the workflow the route names.
func (h *Handler) routeWorkflowRun(c *gin.Context) (*store.Run, bool) {
	r, err := h.opts.Store.GetRun(c.Request.Context(), c.Param("run_id"), userFilter(c))
	if err == nil && (r.ComponentID != c.Param("id") || r.Type != store.SessionWorkflow || r.ParentRunID != "") {
		err = store.ErrNotFound
	}
	if err != nil {
		h.fail(c, "the run", err)
		return nil, false
	}
	return r, true
}

// workflowRunPage shows a workflow run: its outcome, its graph coloured by
// each step's status, and every step execution in the order they started
// (parallel branches, loop iterations and nested workflows' steps
// included) with input, output, duration, attempts, error and trace link.
func (h *Handler) workflowRunPage(c *gin.Context) {
	r, ok := h.routeWorkflowRun(c)
	if !ok {
		return
	}
	cps, err := h.opts.Store.Steps(c.Request.Context(), r.ID)
	if err != nil {
		h.fail(c, "the run's steps", err)
		return
	}
	name := c.Param("id")
	p := view.WorkflowRunPage{WorkflowRunEnd: view.WorkflowRunEnd{Workflow: name, RunID: r.ID, Status: string(r.Status),
		Output: r.Content, Error: r.Error, TraceURL: "/ui/runs/" + r.ID + "/trace", Duration: r.UpdatedAt.Sub(r.CreatedAt),
		CanRun: auth.Of(c).Has(auth.ScopeAgentsRun)},
		SessionID: r.SessionID, Input: r.Input, Created: r.CreatedAt}
	if !r.Status.Terminal() && r.Status != event.StatusPending {
		p.Duration = time.Since(r.CreatedAt)
	}
	kinds := map[string]string{}
	var steps []*engine.WorkflowStep
	if w, ok := h.opts.Engine.Current().Workflow(name); ok {
		steps = w.Steps
		w.Spec.Walk(func(_ string, s *spec.Step) { kinds[s.Name] = s.Kind() })
	}
	status := map[string]string{}
	for _, cp := range cps {
		s := view.StepRun{Run: r.ID, Key: cp.Path, Path: cp.Path, Name: cp.Name(), Kind: kinds[cp.Name()], Status: string(cp.Status),
			Iteration: cp.Iteration, Attempts: cp.Attempts, Input: cp.Input, Output: stepOutput(cp.Output), Error: cp.Error,
			Duration: cp.UpdatedAt.Sub(cp.StartedAt), Depth: strings.Count(cp.Path, "/"),
			TraceURL: "/ui/runs/" + r.ID + "/trace#" + stepAnchor(cp.Name(), cp.Iteration)}
		if cp.Status == event.StatusPaused {
			p.Approval = cp.Input
		}
		if s.Depth == 0 || status[s.Name] == "" || cp.Status != event.StatusCompleted {
			status[s.Name] = s.Status
		}
		p.Steps = append(p.Steps, s)
	}
	if r.Status == event.StatusCompleted {
		for _, s := range walkNames(steps) {
			if status[s] == "" {
				status[s] = "SKIPPED"
			}
		}
	}
	h.render(c, http.StatusOK, view.WorkflowRunDetail(h.frame(c, name+" run", "workflows"), p, view.NewStepGraph(viewSteps(steps)).WithStatus(status)))
}

func walkNames(steps []*engine.WorkflowStep) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Name)
		for _, b := range [][]*engine.WorkflowStep{s.Parallel, s.Then, s.Else, s.Body, s.Choices} {
			out = append(out, walkNames(b)...)
		}
	}
	return out
}

// stepOutput shows a checkpointed output: text as itself, JSON indented.
func stepOutput(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var v any
	if json.Unmarshal(raw, &v) == nil {
		if b, err := json.MarshalIndent(v, "", "  "); err == nil {
			return string(b)
		}
	}
	return string(raw)
}

// stepAnchor is the trace page's anchor of a step's span: "step-" and its
// name, and its loop iteration after the first (see tracePage).
func stepAnchor(name string, iteration int) string {
	if iteration == 0 {
		return "step-" + name
	}
	return "step-" + name + "-" + strconv.Itoa(iteration)
}

// continueFromConsole records an approval button's decision on a PAUSED
// run (the API's continue route's checks) and shows the run's page.
func (h *Handler) continueFromConsole(c *gin.Context) {
	r, ok := h.routeWorkflowRun(c)
	if !ok {
		return
	}
	approved, err := strconv.ParseBool(c.PostForm("approved"))
	if err != nil {
		h.Problem(c, http.StatusUnprocessableEntity, "Approve or reject", "Press Approve or Reject.", "")
		return
	}
	run, err := api.ContinueWorkflow(c.Request.Context(), h.opts.Store, h.opts.Runs, r, approved, strings.TrimSpace(c.PostForm("comment")), api.Decider(c), api.ApprovalViewer(c))
	if err != nil {
		h.fail(c, "the run", err)
		return
	}
	ratelimit.Started(c, run.ID)
	c.Redirect(http.StatusSeeOther, view.WorkflowRunURL(c.Param("id"), r.ID))
}
