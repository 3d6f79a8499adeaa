package console_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"
)

// workflowSpecs has a workflow with every step kind, the workflow it nests,
// and a workflow broken by an unknown agent.
const workflowSpecs = `kind: Workflow
name: inner
description: Nested helper.
steps:
  - {name: inner_step, agent: writer}
---
kind: Workflow
name: pipeline
description: Every step kind.
input:
  type: object
  properties: {topic: {type: string}, sections: {type: array, items: {type: string}}}
  required: [topic]
steps:
  - name: research
    agent: helpdesk
    input: "Research {{ input.topic }}"
    retries: 1
    timeout: 2m
  - name: drafts
    parallel:
      - {name: short, agent: writer, input: "Short: {{ steps.research.output }}"}
      - {name: long, team: crew, input: "Long: {{ steps.research.output }}"}
  - name: check
    condition:
      if: "size(steps.research.output) > 10"
      then: [{name: publish, agent: writer, input: "{{ steps.short.output }}"}]
      else: [{name: give_up, agent: writer}]
  - name: per_section
    loop:
      over: "input.sections"
      as: section
      max: 5
      steps: [{name: write_section, agent: writer, input: "Write {{ section }}"}]
  - name: route
    router:
      expression: "input.topic.startsWith('tech') ? 'tech' : 'general'"
      choices:
        - {name: tech, agent: calc}
        - {name: general, agent: writer}
  - name: review
    approval: {message: "Publish {{ steps.check.output }}?"}
  - name: nested
    workflow: inner
output: "{{ steps.check.output }}"
`

// brokenWorkflow refers to an agent nobody defines.
const brokenWorkflow = `---
kind: Workflow
name: broken
steps:
  - {name: only, agent: nobody}
`

// addWorkflows adds workflowSpecs to a running server's spec folder.
func addWorkflows(t *testing.T, ts *testServer, key string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "workflows.yaml"), []byte(workflowSpecs), 0o644))
	ts.json(http.MethodPost, "/config/reload", key, "", http.StatusOK, nil)
}

// pipelineSteps names every step of pipeline, nested ones included.
var pipelineSteps = []string{"research", "drafts", "short", "long", "check", "publish", "give_up", "per_section", "write_section",
	"route", "tech", "general", "review", "nested"}

type wfStep struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Kind       string   `json:"kind"`
	Agent      string   `json:"agent"`
	Team       string   `json:"team"`
	Workflow   string   `json:"workflow"`
	Input      string   `json:"input"`
	Retries    int      `json:"retries"`
	Timeout    string   `json:"timeout"`
	Condition  string   `json:"condition"`
	Over       string   `json:"over"`
	As         string   `json:"as"`
	Max        int      `json:"max_iterations"`
	Expression string   `json:"expression"`
	Message    string   `json:"message"`
	Steps      []wfStep `json:"steps"`
	ElseSteps  []wfStep `json:"else_steps"`
}

func TestWorkflowListAndDetail(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(workflowSpecs+brokenWorkflow))

	var list []map[string]any
	ts.json(http.MethodGet, "/workflows", "", "", http.StatusOK, &list)
	require.Equal(t, []map[string]any{
		{"id": "inner", "name": "inner", "description": "Nested helper.", "db_id": list[0]["db_id"], "status": "ok"},
		{"id": "pipeline", "name": "pipeline", "description": "Every step kind.", "db_id": list[0]["db_id"], "status": "ok"},
	}, list, "serving workflows by name; the broken one is not served")

	var w struct {
		ID          string         `json:"id"`
		Description string         `json:"description"`
		InputSchema map[string]any `json:"input_schema"`
		Steps       []wfStep       `json:"steps"`
		Output      string         `json:"output"`
		Timeout     string         `json:"timeout"`
		Status      string         `json:"status"`
		SpecVersion string         `json:"spec_version"`
	}
	ts.json(http.MethodGet, "/workflows/pipeline", "", "", http.StatusOK, &w)
	require.Equal(t, "pipeline", w.ID)
	require.Equal(t, []any{"topic"}, w.InputSchema["required"])
	require.Equal(t, "{{ steps.check.output }}", w.Output)
	require.Equal(t, "30m0s", w.Timeout)
	require.Equal(t, "ok", w.Status)
	require.NotEmpty(t, w.SpecVersion)
	require.Len(t, w.Steps, 7)
	tests := []struct {
		step  wfStep
		check func(t *testing.T, s wfStep)
	}{
		{w.Steps[0], func(t *testing.T, s wfStep) {
			require.Equal(t, wfStep{Name: "research", Type: "Step", Kind: "agent", Agent: "helpdesk", Input: "Research {{ input.topic }}", Retries: 1, Timeout: "2m0s"}, s)
		}},
		{w.Steps[1], func(t *testing.T, s wfStep) {
			require.Equal(t, "Parallel", s.Type)
			require.Len(t, s.Steps, 2)
			require.Equal(t, "writer", s.Steps[0].Agent)
			require.Equal(t, "crew", s.Steps[1].Team)
		}},
		{w.Steps[2], func(t *testing.T, s wfStep) {
			require.Equal(t, "Condition", s.Type)
			require.Equal(t, "size(steps.research.output) > 10", s.Condition)
			require.Equal(t, "publish", s.Steps[0].Name)
			require.Equal(t, "give_up", s.ElseSteps[0].Name)
		}},
		{w.Steps[3], func(t *testing.T, s wfStep) {
			require.Equal(t, "Loop", s.Type)
			require.Equal(t, "input.sections", s.Over)
			require.Equal(t, "section", s.As)
			require.Equal(t, 5, s.Max)
			require.Equal(t, "write_section", s.Steps[0].Name)
		}},
		{w.Steps[4], func(t *testing.T, s wfStep) {
			require.Equal(t, "Router", s.Type)
			require.Contains(t, s.Expression, "startsWith")
			require.Equal(t, []string{"tech", "general"}, []string{s.Steps[0].Name, s.Steps[1].Name})
		}},
		{w.Steps[5], func(t *testing.T, s wfStep) {
			require.Equal(t, wfStep{Name: "review", Type: "Approval", Kind: "approval", Message: "Publish {{ steps.check.output }}?"}, s)
		}},
		{w.Steps[6], func(t *testing.T, s wfStep) {
			require.Equal(t, wfStep{Name: "nested", Type: "Step", Kind: "workflow", Workflow: "inner"}, s)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.step.Name, func(t *testing.T) { tc.check(t, tc.step) })
	}

	// Without an input schema, the input is a message.
	var inner struct {
		InputSchema map[string]any `json:"input_schema"`
	}
	ts.json(http.MethodGet, "/workflows/inner", "", "", http.StatusOK, &inner)
	require.Equal(t, []any{"message"}, inner.InputSchema["required"])

	status, body, _ := ts.do(http.MethodGet, "/workflows/nope", "", "", "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body, "workflow nope not found")
	status, body, _ = ts.do(http.MethodGet, "/workflows/broken", "", "", "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body, "workflow broken is broken: fix its spec file")
	require.Contains(t, body, `unknown agent \"nobody\"`)

	// /config lists the serving workflows with their status, like agents
	// and teams; the broken one is among the objects.
	var config struct {
		Workflows []map[string]any `json:"workflows"`
		Objects   []struct {
			Kind, Name, Status string
		} `json:"objects"`
	}
	ts.json(http.MethodGet, "/config", "", "", http.StatusOK, &config)
	require.Len(t, config.Workflows, 2)
	require.Equal(t, "pipeline", config.Workflows[1]["id"])
	require.Equal(t, "Every step kind.", config.Workflows[1]["description"])
	require.Equal(t, "ok", config.Workflows[1]["status"])
	found := false
	for _, o := range config.Objects {
		if o.Kind == "Workflow" && o.Name == "broken" {
			found = true
			require.Equal(t, "broken", o.Status)
		}
	}
	require.True(t, found, "the broken workflow is among the objects")
}

func TestWorkflowRoutesNeedAgentsRead(t *testing.T) {
	t.Parallel()
	const reader, sessions = "sk-wfread-0123456789abcdef", "sk-wfsess-0123456789abcdef"
	ts := startServer(t, withSpecs(workflowSpecs+brokenWorkflow), withKeys(reader+"=agents:read,"+sessions+"=sessions:read"))
	for _, path := range []string{"/workflows", "/workflows/pipeline"} {
		for _, tc := range []struct {
			key  string
			want int
		}{{"", http.StatusUnauthorized}, {sessions, http.StatusForbidden}, {reader, http.StatusOK}} {
			status, body, _ := ts.do(http.MethodGet, path, tc.key, "", "")
			require.Equal(t, tc.want, status, "%s with %q: %s", path, tc.key, body)
		}
	}
}

// TestOpenAPIDocumentsWorkflows: every workflow gets its run endpoint with
// its own input schema, and the listing routes are documented.
func TestOpenAPIDocumentsWorkflows(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(workflowSpecs+brokenWorkflow))
	var doc struct {
		Paths map[string]map[string]struct {
			Summary     string   `json:"summary"`
			Description string   `json:"description"`
			Tags        []string `json:"tags"`
			OperationID string   `json:"operationId"`
			RequestBody struct {
				Content map[string]struct {
					Schema struct {
						Properties map[string]map[string]any `json:"properties"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	require.Contains(t, doc.Paths, "/workflows")
	require.Contains(t, doc.Paths, "/workflows/{workflow_id}")
	require.NotContains(t, doc.Paths, "/workflows/broken/runs", "a broken workflow is not served")
	run := doc.Paths["/workflows/pipeline/runs"]["post"]
	require.Equal(t, "Run workflow pipeline", run.Summary)
	require.Equal(t, []string{"Workflows"}, run.Tags)
	require.Equal(t, "run_workflow_pipeline", run.OperationID)
	require.True(t, strings.HasPrefix(run.Description, "Every step kind."))
	input := run.RequestBody.Content["application/json"].Schema.Properties["input"]
	require.Equal(t, []any{"topic"}, input["required"])
	require.Contains(t, input["properties"], "sections")
	inner := doc.Paths["/workflows/inner/runs"]["post"].RequestBody.Content["application/json"].Schema.Properties["input"]
	require.Equal(t, []any{"message"}, inner["required"])

	status, page, _ := ts.do(http.MethodGet, "/docs", "", "", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, page, "<h2>Workflows</h2>")
	require.Contains(t, page, "<code>/workflows/pipeline/runs</code>")
}

// TestWorkflowPages renders the Workflows list and a workflow's page: its
// SVG graph has a box per step saying what it runs, linked to the agent,
// team or nested workflow, branches in labelled frames, and the approval
// marked.
func TestWorkflowPages(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(workflowSpecs+brokenWorkflow))

	resp, body := ts.page("GET", "/ui/workflows", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	d := doc(t, body)
	require.Equal(t, "/ui/workflows/pipeline", d.Find("[data-testid=workflow-pipeline] [data-testid=workflow-link]").AttrOr("href", ""))
	require.Equal(t, "14", strings.TrimSpace(d.Find("[data-testid=workflow-pipeline] td").Eq(1).Text()), "every step, nested ones included")
	require.Contains(t, d.Find("[data-testid=diagnostics]").Text(), `unknown agent "nobody"`)
	require.Equal(t, "page", d.Find("[data-testid=nav-workflows]").AttrOr("aria-current", ""))

	resp, body = ts.page("GET", "/ui/workflows/pipeline", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	d = doc(t, body)
	require.Equal(t, "Every step kind.", d.Find("[data-testid=workflow-description]").Text())
	require.Contains(t, d.Find("[data-testid=input-schema]").Text(), `"sections"`)
	require.Equal(t, "{{ steps.check.output }}", d.Find("[data-testid=workflow-output]").Text())
	svg := d.Find("[data-testid=workflow-graph] svg")
	require.Equal(t, 1, svg.Length())
	var drawn []string
	svg.Find("[data-testid=step]").Each(func(_ int, s *goquery.Selection) { drawn = append(drawn, s.AttrOr("data-step", "")) })
	require.ElementsMatch(t, pipelineSteps, drawn, "a box per step")
	for _, tc := range []struct{ step, kind, line, href string }{
		{"research", "agent", "agent helpdesk", "/ui/agents/helpdesk"},
		{"long", "agent", "team crew", "/ui/teams/crew"},
		{"nested", "workflow", "workflow inner", "/ui/workflows/inner"},
		{"check", "condition", "condition: if size(steps.rese…", ""},
		{"per_section", "loop", "loop: each section in input.s…", ""},
		{"review", "approval", "approval: Publish {{ steps.ch…", ""},
	} {
		box := svg.Find("[data-step=" + tc.step + "]")
		require.Equal(t, 1, box.Length(), tc.step)
		require.Equal(t, tc.line, box.Find("text").Eq(1).Text(), tc.step)
		require.Equal(t, tc.href, box.Parent().AttrOr("href", ""), tc.step)
	}
	require.Equal(t, 1, svg.Find("[data-testid=approval-mark]").Length(), "the approval is marked")
	var frames []string
	svg.Find("[data-testid=graph-branch] text").Each(func(_ int, s *goquery.Selection) { frames = append(frames, s.Text()) })
	require.Equal(t, []string{"branch", "branch", "then", "else", "body, at most 5×", "choice tech", "choice general"}, frames)

	// Parallel branches sit side by side, sequential steps top to bottom.
	y := func(step string) string { return svg.Find("[data-step="+step+"] rect").AttrOr("y", "") }
	x := func(step string) string { return svg.Find("[data-step="+step+"] rect").AttrOr("x", "") }
	require.Equal(t, y("short"), y("long"))
	require.NotEqual(t, x("short"), x("long"))
	require.Less(t, num(t, y("research")), num(t, y("drafts")))
	require.Less(t, num(t, y("drafts")), num(t, y("short")))
	require.Less(t, num(t, y("short")), num(t, y("check")))

	for _, name := range []string{"broken", "nope"} {
		resp, body = ts.page("GET", "/ui/workflows/"+name, "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, name)
		require.Contains(t, body, "workflow "+name+" is not served")
	}
}

// TestWorkflowPageOfExample renders the example workflow of agents.d over
// the example agents and team it runs.
func TestWorkflowPageOfExample(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	require.NoError(t, os.Remove(filepath.Join(ts.dir, "specs.yaml")))
	for _, f := range []string{"research.yaml", "briefing.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "agents.d", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(ts.dir, f), b, 0o644))
	}
	ts.json(http.MethodPost, "/config/reload", "", "", http.StatusOK, nil)

	resp, body := ts.page("GET", "/ui/workflows/briefing", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	svg := doc(t, body).Find("[data-testid=workflow-graph] svg")
	for _, s := range []string{"research", "drafts", "short", "long", "check", "publish", "too_little"} {
		require.Equal(t, 1, svg.Find("[data-step="+s+"]").Length(), s)
	}
	require.Equal(t, "/ui/teams/research", svg.Find("[data-step=long]").Parent().AttrOr("href", ""))
	require.Equal(t, "/ui/agents/researcher", svg.Find("[data-step=research]").Parent().AttrOr("href", ""))
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err, s)
	return f
}
