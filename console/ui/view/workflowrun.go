package view

import (
	"strconv"
	"strings"
	"time"
)

// FormField is one field of a workflow runner's form, generated from a
// top-level property of the workflow's input JSON Schema. Type is text,
// number, integer, checkbox, select (an enum) or json (anything nested,
// typed as JSON text).
type FormField struct {
	Name, Label, Type string
	Description       string
	Required          bool
	Options           []string
}

// FieldName is the form field's name: "in." and the property, so a
// property named like a form control (session_id) cannot collide.
func (f FormField) FieldName() string { return "in." + f.Name }

// WorkflowRunRow is one recent run on a workflow's page.
type WorkflowRunRow struct {
	RunID, Status, Input string
	Created              time.Time
	Duration             time.Duration
}

// StepRun is one step execution of a workflow run: a checkpoint, or a
// step the live runner saw start. Key identifies it within the run (path,
// or name and iteration while streaming).
type StepRun struct {
	Run, Key, Path, Name, Kind, Status string
	Iteration, Attempts, Depth         int
	Input, Output, Error               string
	Duration                           time.Duration
	TraceURL                           string
}

// ID is the step row's element id.
func (s StepRun) ID() string { return "st-" + s.Run + "-" + elementID(s.Key) }

// OutputID is the element id nested agent text streams into.
func (s StepRun) OutputID() string { return "o-" + s.Run + "-" + elementID(s.Key) }

// StepKey identifies a step execution while it streams: its name, and the
// loop iteration after the first.
func StepKey(name string, iteration int) string {
	if iteration == 0 {
		return name
	}
	return name + "[" + strconv.Itoa(iteration) + "]"
}

// elementID keeps letters, digits, - and _ of s and turns the rest into _.
func elementID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// WorkflowRunEnd is the outcome of a run the runner streamed.
type WorkflowRunEnd struct {
	Workflow, RunID, Status string
	Output, Error           string
	TraceURL                string
	Duration                time.Duration
	// Approval is the message of the approval step a PAUSED run waits at.
	Approval string
	CanRun   bool
}

// URL is the run's page.
func (e WorkflowRunEnd) URL() string { return WorkflowRunURL(e.Workflow, e.RunID) }

// WorkflowRunURL is the console page of a workflow run.
func WorkflowRunURL(workflow, runID string) string {
	return "/ui/workflows/" + workflow + "/runs/" + runID
}

// WorkflowRunPage is a workflow run's page.
type WorkflowRunPage struct {
	WorkflowRunEnd
	SessionID, Input string
	Created          time.Time
	Steps            []StepRun
}

// Live reports whether the run may still change: the page refreshes itself.
func (p WorkflowRunPage) Live() bool {
	return p.Status == "PENDING" || p.Status == "RUNNING"
}

// WithStatus returns g with each node coloured by its step's status
// (status maps step names to RUNNING, COMPLETED, ERROR, ...; a step run
// several times, in a loop, shows its last status).
func (g StepGraph) WithStatus(status map[string]string) StepGraph {
	nodes := make([]GraphNode, len(g.Nodes))
	for i, n := range g.Nodes {
		n.Status = status[n.Name]
		nodes[i] = n
	}
	g.Nodes = nodes
	return g
}
