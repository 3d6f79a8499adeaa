package ui

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

func workflowRow(snap *engine.Snapshot, w *engine.Workflow) view.WorkflowRow {
	n := 0
	w.Spec.Walk(func(string, *spec.Step) { n++ })
	return view.WorkflowRow{Name: w.Name(), Description: w.Spec.Description, Status: targetStatus(snap, spec.KindWorkflow, w.Name()), StepCount: n}
}

func (h *Handler) workflowsPage(c *gin.Context) {
	snap := h.opts.Engine.Current()
	p := view.Workflows{Broken: notServing(snap, spec.KindWorkflow)}
	for _, w := range snap.Workflows() {
		p.Rows = append(p.Rows, workflowRow(snap, w))
	}
	h.render(c, http.StatusOK, view.WorkflowsPage(h.frame(c, "Workflows", "workflows"), p))
}

func (h *Handler) workflowPage(c *gin.Context) {
	snap := h.opts.Engine.Current()
	name := c.Param("id")
	w, ok := snap.Workflow(name)
	o, found := snap.Object(spec.Key{Kind: spec.KindWorkflow, Name: name})
	if !ok {
		hint := "See Workflows for what is served."
		if found && !o.Serving() {
			hint = "Its spec has errors and no earlier version works: see Config. " + o.Diagnostics.Errors().Error()
		}
		h.Problem(c, http.StatusNotFound, "workflow "+name+" is not served", "No workflow named "+name+" is being served.", hint)
		return
	}
	schema, err := json.MarshalIndent(api.WorkflowInputSchema(w.Spec), "", "  ")
	if err != nil {
		h.fail(c, "the input schema", err)
		return
	}
	p := view.WorkflowPage{WorkflowRow: workflowRow(snap, w), InputSchema: string(schema), Output: w.Spec.Output.Template,
		Timeout: w.Timeout.String(), Steps: viewSteps(w.Steps), Fields: formFields(w.Spec.Input), CanRun: auth.Of(c).Has(auth.ScopeAgentsRun)}
	if auth.Of(c).Has(auth.ScopeSessionsRead) {
		runs, _, err := h.opts.Store.ListComponentRuns(c.Request.Context(), store.RunQuery{Filter: userFilter(c), Type: store.SessionWorkflow,
			ComponentID: name, Limit: maxWorkflowRuns, Page: 1})
		if err != nil {
			h.fail(c, "the workflow's runs", err)
			return
		}
		for _, r := range runs {
			p.Runs = append(p.Runs, view.WorkflowRunRow{RunID: r.ID, Status: string(r.Status), Input: r.Input, Created: r.CreatedAt, Duration: r.UpdatedAt.Sub(r.CreatedAt)})
		}
	}
	if w.Spec.Output.Schema != nil {
		out, err := json.MarshalIndent(w.Spec.Output.Schema, "", "  ")
		if err != nil {
			h.fail(c, "the output schema", err)
			return
		}
		p.OutputSchema = string(out)
	}
	if found {
		p.File, p.Diagnostics = o.File, viewDiagnostics(o.Diagnostics)
		p.Edit = h.editURL(c, o.File)
	}
	h.render(c, http.StatusOK, view.WorkflowDetail(h.frame(c, name, "workflows"), p, view.NewStepGraph(p.Steps)))
}

// viewSteps describes a workflow's step tree for its graph.
func viewSteps(steps []*engine.WorkflowStep) []view.WorkflowStep {
	out := make([]view.WorkflowStep, 0, len(steps))
	for _, s := range steps {
		sp := s.Spec
		v := view.WorkflowStep{Name: s.Name, Kind: s.Kind}
		switch s.Kind {
		case spec.StepAgent:
			v.Target, v.TargetKind = sp.Agent, "agent"
		case spec.StepTeam:
			v.Target, v.TargetKind = sp.Team, "team"
		case spec.StepWorkflow:
			v.Target, v.TargetKind = sp.Workflow, "workflow"
		case spec.StepParallel:
			for _, b := range s.Parallel {
				v.Branches = append(v.Branches, view.WorkflowBranch{Label: "branch", Steps: viewSteps([]*engine.WorkflowStep{b})})
			}
		case spec.StepCondition:
			v.Detail = "if " + sp.Condition.If
			v.Branches = []view.WorkflowBranch{{Label: "then", Steps: viewSteps(s.Then)}, {Label: "else", Steps: viewSteps(s.Else)}}
		case spec.StepLoop:
			bound := "at most " + strconv.Itoa(s.Max) + "×"
			if sp.Loop.Over != "" {
				v.Detail = "each " + s.As + " in " + sp.Loop.Over + ", " + bound
			} else {
				v.Detail = "until " + sp.Loop.Until + ", " + bound
			}
			v.Branches = []view.WorkflowBranch{{Label: "body, " + bound, Steps: viewSteps(s.Body)}}
		case spec.StepRouter:
			v.Detail = sp.Router.Expression
			if sp.Router.Agent != "" {
				v.Detail = "agent " + sp.Router.Agent + " chooses"
			}
			for _, ch := range s.Choices {
				v.Branches = append(v.Branches, view.WorkflowBranch{Label: "choice " + ch.Name, Steps: viewSteps([]*engine.WorkflowStep{ch})})
			}
		case spec.StepApproval:
			v.Detail = "a person approves"
			if sp.Approval.Message != "" {
				v.Detail = sp.Approval.Message
			}
		}
		out = append(out, v)
	}
	return out
}
