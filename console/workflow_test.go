package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The workflows of the end-to-end tests: their agents are "writer" (the
// OpenAI-wire fake vendor, which answers "system=Write.|user=<message>|
// history=0") and the echo team "crew".
const runWorkflowSpecs = `
kind: Workflow
name: seq
steps:
  - {name: one, agent: writer, input: "first {{ message }}"}
  - {name: two, agent: writer, input: "second"}
output: "{{ steps.one.output }} / {{ steps.two.output }}"
---
kind: Workflow
name: fan
steps:
  - name: both
    parallel:
      - {name: left, agent: writer, input: "left"}
      - {name: right, agent: writer, input: "right"}
  - {name: join, agent: writer, input: "{{ size(steps.left.output) }}+{{ size(steps.right.output) }}"}
---
kind: Workflow
name: branch
steps:
  - name: check
    condition:
      if: "message == 'yes'"
      then: [{name: yes_step, agent: writer, input: "then"}]
      else: [{name: no_step, agent: writer, input: "else"}]
---
kind: Workflow
name: each
input:
  type: object
  properties: {items: {type: array, items: {type: string}}}
  required: [items]
steps:
  - name: per_item
    loop:
      over: "input.items"
      as: it
      max: 5
      steps: [{name: write_item, agent: writer, input: "item {{ it }} #{{ iteration.index }}"}]
output: "{{ steps.per_item.output }}"
---
kind: Workflow
name: route
steps:
  - name: pick
    router:
      expression: "message.startsWith('t') ? 'tech' : 'other'"
      choices:
        - {name: tech, agent: writer, input: "tech"}
        - {name: other, team: crew, input: "other"}
---
kind: Workflow
name: outer
steps:
  - {name: first, team: crew, input: "hello crew"}
  - {name: inner, workflow: seq, input: "nested"}
---
kind: Workflow
name: review
steps:
  - {name: draft, agent: writer, input: "draft {{ message }}"}
  - name: ok
    approval: {message: "Publish {{ steps.draft.output }}?"}
  - {name: publish, agent: writer, input: "publish {{ steps.ok.output.comment }}"}
---
kind: Workflow
name: counter
steps:
  - name: c
    agent: writer
    input: "count {{ has(state.n) ? state.n : 0 }}"
    set_state: {n: "(has(state.n) ? state.n : 0) + 1"}
---
kind: Workflow
name: slow
steps:
  - {name: wait, agent: writer, input: "block here"}
  - {name: after, agent: writer, input: "after"}
`

// own returns the workflow's own frames (depth 0) as "event:step".
func own(fs []frame) []string {
	var out []string
	for _, f := range fs {
		if _, nested := f.Data["depth"]; nested {
			continue
		}
		s := f.Event
		if step, ok := f.Data["step_name"].(string); ok {
			s += ":" + step
		}
		// AgentOS's step_id (the step's path) and step_index (its
		// position, or the loop iteration), when they differ from the name
		// and 0.
		if id, ok := f.Data["step_id"].(string); ok && id != f.Data["step_name"] {
			s += "@" + id
		}
		if i, ok := f.Data["step_index"].(float64); ok && i != 0 {
			s += fmt.Sprintf("#%d", int(i))
		}
		out = append(out, s)
	}
	return out
}

type runStepRow struct {
	Name      string          `json:"step_name"`
	Path      string          `json:"path"`
	Status    string          `json:"status"`
	Input     string          `json:"input"`
	Output    json.RawMessage `json:"output"`
	Attempts  int             `json:"attempts"`
	Iteration int             `json:"iteration"`
	Duration  time.Duration   `json:"duration_ns"`
}

type wfRun struct {
	RunID      string       `json:"run_id"`
	WorkflowID string       `json:"workflow_id"`
	Status     string       `json:"status"`
	Content    string       `json:"content"`
	Error      string       `json:"error"`
	Steps      []runStepRow `json:"steps"`
}

func TestWorkflowRunsEveryStepKind(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	const v = "system=Write.|user=%s|history=0"
	cases := []struct {
		name, workflow, body string
		events               []string // the workflow's own frames
		content              string
		steps                []string // stored step paths, in order
	}{
		{
			name: "agents in sequence", workflow: "seq", body: `{"message": "go"}`,
			events:  []string{"WorkflowStarted", "StepStarted:one", "StepCompleted:one", "StepStarted:two#1", "StepCompleted:two#1", "WorkflowCompleted"},
			content: fmt.Sprintf(v, "first go") + " / " + fmt.Sprintf(v, "second"),
			steps:   []string{"one", "two"},
		},
		{
			name: "parallel", workflow: "fan", body: `{"message": "go"}`,
			content: fmt.Sprintf(v, fmt.Sprintf("%d+%d", len(fmt.Sprintf(v, "left")), len(fmt.Sprintf(v, "right")))),
			steps:   []string{"both", "left", "right", "join"},
		},
		{
			name: "condition", workflow: "branch", body: `{"message": "no"}`,
			events:  []string{"WorkflowStarted", "StepStarted:check", "ConditionExecutionStarted:check", "StepStarted:no_step", "StepCompleted:no_step", "ConditionExecutionCompleted:check", "StepCompleted:check", "WorkflowCompleted"},
			content: fmt.Sprintf(v, "else"),
			steps:   []string{"check", "no_step"},
		},
		{
			name: "loop over the input", workflow: "each", body: `{"input": {"items": ["a", "b"]}}`,
			events: []string{"WorkflowStarted", "StepStarted:per_item", "LoopExecutionStarted:per_item",
				"LoopIterationStarted:per_item@per_item[0]", "StepStarted:write_item@per_item[0]/write_item", "StepCompleted:write_item@per_item[0]/write_item", "LoopIterationCompleted:per_item@per_item[0]",
				"LoopIterationStarted:per_item@per_item[1]#1", "StepStarted:write_item@per_item[1]/write_item", "StepCompleted:write_item@per_item[1]/write_item", "LoopIterationCompleted:per_item@per_item[1]#1",
				"LoopExecutionCompleted:per_item", "StepCompleted:per_item", "WorkflowCompleted"},
			content: mustJSON(t, []string{fmt.Sprintf(v, "item a #0"), fmt.Sprintf(v, "item b #1")}),
			steps:   []string{"per_item", "per_item[0]/write_item", "per_item[1]/write_item"},
		},
		{
			name: "router", workflow: "route", body: `{"message": "tx"}`,
			events:  []string{"WorkflowStarted", "StepStarted:pick", "RouterExecutionStarted:pick", "StepStarted:tech", "StepCompleted:tech", "RouterExecutionCompleted:pick", "StepCompleted:pick", "WorkflowCompleted"},
			content: fmt.Sprintf(v, "tech"),
			steps:   []string{"pick", "tech"},
		},
		{
			name: "team and nested workflow", workflow: "outer", body: `{"message": "go"}`,
			events:  []string{"WorkflowStarted", "StepStarted:first", "StepCompleted:first", "StepStarted:inner#1", "StepCompleted:inner#1", "WorkflowCompleted"},
			content: fmt.Sprintf(v, "first nested") + " / " + fmt.Sprintf(v, "second"),
			steps:   []string{"first", "inner", "inner/one", "inner/two"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			frames, hdr := ts.stream("/workflows/"+tc.workflow+"/runs", "", "application/json", tc.body)
			runID := hdr.Get("X-Run-Id")
			require.NotEmpty(t, runID)
			if tc.events != nil {
				require.Equal(t, tc.events, own(frames))
			}
			last := frames[len(frames)-1]
			require.Equal(t, "WorkflowCompleted", last.Event)
			require.Equal(t, tc.content, last.Data["content"])
			require.Equal(t, tc.workflow, last.Data["workflow_id"])
			inner := 0
			for _, f := range frames {
				if _, nested := f.Data["depth"]; nested {
					inner++
					require.NotEmpty(t, f.Data["step_name"], "nested frames are tagged with their step: %v", f.Data)
				}
			}
			require.Positive(t, inner, "the steps' agent events stream inside the workflow's")
			if tc.workflow == "outer" {
				// The nested workflow's step events carry their path in
				// this run and their position in the nested workflow.
				var nested []string
				for _, f := range frames {
					if f.Event == "StepStarted" && f.Data["depth"] != nil {
						nested = append(nested, fmt.Sprintf("%v#%v", f.Data["step_id"], f.Data["step_index"]))
					}
				}
				require.Equal(t, []string{"inner/one#0", "inner/two#1"}, nested)
			}

			var run wfRun
			ts.json(http.MethodGet, "/workflows/"+tc.workflow+"/runs/"+runID, "", "", http.StatusOK, &run)
			require.Equal(t, "COMPLETED", run.Status)
			require.Equal(t, tc.workflow, run.WorkflowID)
			require.Equal(t, tc.content, run.Content)
			var paths []string
			for _, s := range run.Steps {
				paths = append(paths, s.Path)
				require.Equal(t, "COMPLETED", s.Status, s.Path)
				require.Equal(t, 1, s.Attempts, s.Path)
				require.NotEmpty(t, s.Output, s.Path)
			}
			if tc.workflow == "fan" {
				// Branches start in any order, after their parallel, before the join.
				require.ElementsMatch(t, tc.steps, paths)
				require.Equal(t, []string{"both", "join"}, []string{paths[0], paths[3]})
			} else {
				require.Equal(t, tc.steps, paths)
			}
			var listed []wfRun
			ts.json(http.MethodGet, "/workflows/"+tc.workflow+"/runs", "", "", http.StatusOK, &listed)
			require.Contains(t, runIDs(listed), runID)
		})
	}
}

func runIDs(rs []wfRun) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.RunID
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestWorkflowRunOptions: a form request without streaming, a background
// run polled to its end, a step's input and output stored, and refusals.
func TestWorkflowRunOptions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	form := url.Values{"message": {"hi"}, "stream": {"false"}}.Encode()
	var run wfRun
	code, body, _ := ts.do(http.MethodPost, "/workflows/seq/runs", "", "application/x-www-form-urlencoded", form)
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &run))
	require.Equal(t, "COMPLETED", run.Status)
	require.Contains(t, run.Content, "user=first hi")

	code, body, _ = ts.do(http.MethodPost, "/workflows/each/runs", "", "application/json", `{"message": "go", "background": true}`)
	require.Equal(t, http.StatusAccepted, code, body)
	var accepted struct {
		RunID string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &accepted))
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/workflows/each/runs/"+accepted.RunID, "", "", http.StatusOK, &run)
		return run.Status == "ERROR"
	}, 10*time.Second, 20*time.Millisecond, "a workflow with an input schema refuses a bare message")
	require.Contains(t, run.Error, "send input as an object")

	code, body, _ = ts.do(http.MethodPost, "/workflows/each/runs", "", "application/json", `{"input": {"items": ["x"]}, "background": true}`)
	require.Equal(t, http.StatusAccepted, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &accepted))
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/workflows/each/runs/"+accepted.RunID, "", "", http.StatusOK, &run)
		return run.Status == "COMPLETED"
	}, 10*time.Second, 20*time.Millisecond)
	require.Len(t, run.Steps, 2)
	require.Equal(t, "per_item[0]/write_item", run.Steps[1].Path)
	require.Equal(t, "item x #0", run.Steps[1].Input)
	require.JSONEq(t, mustJSON(t, "system=Write.|user=item x #0|history=0"), string(run.Steps[1].Output))

	for _, tc := range []struct{ path, body string }{
		{"/workflows/nope/runs", `{"message": "x", "stream": false}`},
		{"/workflows/seq/runs/" + accepted.RunID, ""},
	} {
		method := http.MethodPost
		if tc.body == "" {
			method = http.MethodGet
		}
		code, body, _ := ts.do(method, tc.path, "", "application/json", tc.body)
		require.Equal(t, http.StatusNotFound, code, body)
	}
	code, body, _ = ts.do(http.MethodPost, "/workflows/seq/runs", "", "application/json", `{"message": "x", "input": {"a": 1}}`)
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
}

// TestWorkflowCancel cancels a workflow during its first step: the step's
// model call ends, the run ends CANCELLED, the next step never runs.
func TestWorkflowCancel(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	done := make(chan []frame, 1)
	go func() {
		frames, _ := ts.stream("/workflows/slow/runs", "", "application/json", `{"message": "go"}`)
		done <- frames
	}()
	var runID string
	require.Eventually(t, func() bool {
		var listed []wfRun
		ts.json(http.MethodGet, "/workflows/slow/runs?status=RUNNING", "", "", http.StatusOK, &listed)
		if len(listed) == 1 {
			runID = listed[0].RunID
		}
		return runID != "" && len(ts.v.requests()) > 0
	}, 10*time.Second, 10*time.Millisecond)
	code, body, _ := ts.do(http.MethodPost, "/workflows/slow/runs/"+runID+"/cancel", "", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var frames []frame
	select {
	case frames = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the workflow did not stop")
	}
	require.Equal(t, "WorkflowCancelled", frames[len(frames)-1].Event)
	var run wfRun
	ts.json(http.MethodGet, "/workflows/slow/runs/"+runID, "", "", http.StatusOK, &run)
	require.Equal(t, "CANCELLED", run.Status)
	require.Len(t, run.Steps, 1)
	require.Equal(t, "CANCELLED", run.Steps[0].Status)
	for _, r := range ts.v.requests() {
		require.NotContains(t, strings.ToLower(fmt.Sprint(r.Messages)), "after", "the next step never ran")
	}
}

// TestWorkflowChatCompletions runs a workflow through the OpenAI surface,
// named by its name as the model, streamed and not.
func TestWorkflowChatCompletions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	want := "system=Write.|user=first hi|history=0 / system=Write.|user=second|history=0"
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	ts.json(http.MethodPost, "/v1/chat/completions", "", `{"model": "seq", "messages": [{"role": "user", "content": "hi"}]}`, http.StatusOK, &out)
	require.Len(t, out.Choices, 1)
	require.Equal(t, want, out.Choices[0].Message.Content)

	code, body, _ := ts.do(http.MethodPost, "/v1/chat/completions", "", "application/json", `{"model": "seq", "stream": true, "messages": [{"role": "user", "content": "hi"}]}`)
	require.Equal(t, http.StatusOK, code)
	var content strings.Builder
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal([]byte(data), &chunk), data)
		for _, c := range chunk.Choices {
			content.WriteString(c.Delta.Content)
		}
	}
	require.Equal(t, want, content.String())
	require.True(t, strings.HasSuffix(strings.TrimSpace(body), "data: [DONE]"))

	var models struct {
		Data []struct{ ID, Type string } `json:"data"`
	}
	ts.json(http.MethodGet, "/v1/models", "", "", http.StatusOK, &models)
	require.Contains(t, models.Data, struct{ ID, Type string }{"seq", "workflow"})
}

// TestWorkflowTrace: a workflow run's trace has a span per step under the
// run (branches under their parallel), each step's agent run inside its
// step, and the model requests inside those.
func TestWorkflowTrace(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	code, body, hdr := ts.do(http.MethodPost, "/workflows/fan/runs", "", "application/json", `{"message": "go", "stream": false}`)
	require.Equal(t, http.StatusOK, code, body)
	traceID := hdr.Get("X-Trace-Id")
	require.NotEmpty(t, traceID)
	var got struct {
		Tree []traceNode `json:"tree"`
	}
	require.Eventually(t, func() bool {
		status, body, _ := ts.do(http.MethodGet, "/traces/"+traceID, "", "", "")
		return status == http.StatusOK && json.Unmarshal([]byte(body), &got) == nil
	}, 10*time.Second, 20*time.Millisecond)
	require.Len(t, got.Tree, 1)
	root := got.Tree[0]
	require.Equal(t, "workflow.run fan", root.Name)
	// shape renders a span tree as "name(children)".
	var shape func(n traceNode) string
	shape = func(n traceNode) string {
		var kids []string
		for _, c := range n.Spans {
			if c.Kind != "store" {
				kids = append(kids, shape(c))
			}
		}
		slices.Sort(kids)
		if len(kids) == 0 {
			return n.Name
		}
		return n.Name + "(" + strings.Join(kids, " ") + ")"
	}
	const model = "model.request openai/test-model"
	require.Equal(t, "workflow.run fan("+
		"workflow.step both(workflow.step left(step.run writer("+model+")) workflow.step right(step.run writer("+model+"))) "+
		"workflow.step join(step.run writer("+model+")))", shape(root))
}

// TestWorkflowApproval pauses a run at its approval step, continues it with
// an approval (the steps before are not executed again, the decision is the
// step's output) and rejects another one.
func TestWorkflowApproval(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	const v = "system=Write.|user=%s|history=0"
	start := func(msg string) string {
		frames, hdr := ts.stream("/workflows/review/runs", "", "application/json", `{"message": "`+msg+`"}`)
		require.Equal(t, []string{"WorkflowStarted", "StepStarted:draft", "StepCompleted:draft", "StepStarted:ok#1", "WorkflowPaused"}, own(frames))
		require.Equal(t, "Publish "+fmt.Sprintf(v, "draft "+msg)+"?", frames[len(frames)-1].Data["content"])
		var run wfRun
		ts.json(http.MethodGet, "/workflows/review/runs/"+hdr.Get("X-Run-Id"), "", "", http.StatusOK, &run)
		require.Equal(t, "PAUSED", run.Status)
		require.Len(t, run.Steps, 2)
		require.Equal(t, "PAUSED", run.Steps[1].Status)
		require.Equal(t, "Publish "+fmt.Sprintf(v, "draft "+msg)+"?", run.Steps[1].Input)
		return run.RunID
	}
	wait := func(id string) wfRun {
		var run wfRun
		require.Eventually(t, func() bool {
			ts.json(http.MethodGet, "/workflows/review/runs/"+id, "", "", http.StatusOK, &run)
			return run.Status != "PENDING" && run.Status != "RUNNING" && run.Status != "PAUSED"
		}, 10*time.Second, 20*time.Millisecond)
		return run
	}
	drafts := func(msg string) int {
		n := 0
		for _, r := range ts.v.requests() {
			if fmt.Sprint(r.Messages[len(r.Messages)-1].Content) == "draft "+msg {
				n++
			}
		}
		return n
	}

	approved := start("a")
	code, body, _ := ts.do(http.MethodPost, "/workflows/review/runs/"+approved+"/continue", "", "application/json", `{"approved": true, "comment": "ship it"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	run := wait(approved)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	require.Equal(t, fmt.Sprintf(v, "publish ship it"), run.Content)
	require.Len(t, run.Steps, 3)
	require.JSONEq(t, `{"approved": true, "comment": "ship it"}`, string(run.Steps[1].Output))
	require.Equal(t, 1, drafts("a"), "the draft is not written again")
	code, body, _ = ts.do(http.MethodPost, "/workflows/review/runs/"+approved+"/continue", "", "application/json", `{"approved": true}`)
	require.Equal(t, http.StatusConflict, code, body)

	rejected := start("b")
	code, body, _ = ts.do(http.MethodPost, "/workflows/review/runs/"+rejected+"/continue", "", "application/json", `{}`)
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	code, body, _ = ts.do(http.MethodPost, "/workflows/review/runs/"+rejected+"/continue", "", "application/json", `{"approved": false, "comment": "too short"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	run = wait(rejected)
	require.Equal(t, "CANCELLED", run.Status)
	require.Contains(t, run.Error, "rejected by the reviewer: too short")
	require.Len(t, run.Steps, 2, "publish never ran")
}

// TestWorkflowOpenAPI: every workflow has its run route documented, with
// its input schema as the body's input.
func TestWorkflowOpenAPI(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	for _, name := range []string{"seq", "fan", "branch", "each", "route", "outer", "review", "counter", "slow"} {
		require.Contains(t, doc.Paths, "/workflows/"+name+"/runs")
	}
	schema := doc.Paths["/workflows/each/runs"]["post"].RequestBody.Content["application/json"].Schema
	input := schema["properties"].(map[string]any)["input"].(map[string]any)
	require.Equal(t, []any{"items"}, input["required"])
	// The input may also come as JSON text in message.
	require.Contains(t, schema["properties"], "message")

	// The event schema has AgentOS's step fields.
	var raw struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &raw)
	props := raw.Components.Schemas["RunEvent"].Properties
	require.Equal(t, "string", props["step_name"].Type)
	require.Equal(t, "string", props["step_id"].Type)
	require.Equal(t, "integer", props["step_index"].Type)
}

// TestWorkflowSessionState: set_state persists in the workflow's session,
// read by the session's next runs (foreground and background).
func TestWorkflowSessionState(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	var run wfRun
	ts.json(http.MethodPost, "/workflows/counter/runs", "", `{"message": "x", "stream": false, "session_id": "counting"}`, http.StatusOK, &run)
	require.Equal(t, "system=Write.|user=count 0|history=0", run.Content)
	ts.json(http.MethodPost, "/workflows/counter/runs", "", `{"message": "x", "stream": false, "session_id": "counting"}`, http.StatusOK, &run)
	require.Equal(t, "system=Write.|user=count 1|history=0", run.Content)
	code, body, _ := ts.do(http.MethodPost, "/workflows/counter/runs", "", "application/json", `{"message": "x", "background": true, "session_id": "counting"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &run))
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/workflows/counter/runs/"+run.RunID, "", "", http.StatusOK, &run)
		return run.Status == "COMPLETED"
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "system=Write.|user=count 2|history=0", run.Content)
	var sess struct {
		State map[string]any `json:"session_state"`
		Type  string         `json:"session_type"`
	}
	ts.json(http.MethodGet, "/sessions/counting", "", "", http.StatusOK, &sess)
	require.Equal(t, map[string]any{"n": float64(3)}, sess.State)
	require.Equal(t, "workflow", sess.Type)
	var listed struct {
		Data []struct {
			ID string `json:"session_id"`
		} `json:"data"`
	}
	ts.json(http.MethodGet, "/sessions?type=workflow", "", "", http.StatusOK, &listed)
	require.Len(t, listed.Data, 1)
	require.Equal(t, "counting", listed.Data[0].ID)
	ts.json(http.MethodPost, "/workflows/counter/runs", "", `{"message": "x", "stream": false}`, http.StatusOK, &run)
	require.Equal(t, "system=Write.|user=count 0|history=0", run.Content, "another session starts afresh")
}

// TestWorkflowTypedInput: a workflow whose expressions use an integer input
// field gets the JSON number as an int (3 + 1 is 4, not an overload error),
// and an input its schema refuses (a fraction there, a missing or mistyped
// field) is refused with 422 naming the field before any run starts.
func TestWorkflowTypedInput(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(`
kind: Workflow
name: typed
input:
  type: object
  additionalProperties: false
  properties:
    count: {type: integer}
    topic: {type: string}
    box: {type: object, properties: {size: {type: integer}}}
  required: [count, topic]
steps:
  - name: big
    condition:
      if: input.count + input.box.size > 3
      then: [{name: many, agent: writer, input: "{{ input.count + 1 }} {{ input.topic }}"}]
      else: [{name: few, agent: writer, input: "few"}]
`))
	for _, tc := range []struct {
		name, body, content string
	}{
		{"integers from JSON", `{"input": {"count": 3, "topic": "go", "box": {"size": 1}}, "stream": false}`, "system=Write.|user=4 go|history=0"},
		{"a whole float", `{"input": {"count": 1.0, "topic": "go", "box": {"size": 0}}, "stream": false}`, "system=Write.|user=few|history=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var run wfRun
			ts.json(http.MethodPost, "/workflows/typed/runs", "", tc.body, http.StatusOK, &run)
			require.Equal(t, "COMPLETED", run.Status, run.Error)
			require.Equal(t, tc.content, run.Content)
		})
	}
	for _, tc := range []struct{ name, input, want string }{
		{"a fraction for an integer", `{"count": 2.5, "topic": "go", "box": {"size": 0}}`, "at /count: got number, want integer"},
		{"a required field missing", `{"count": 2}`, "missing property 'topic'"},
		{"a wrong type", `{"count": 2, "topic": 7}`, "at /topic: got number, want string"},
		{"an undeclared field", `{"count": 2, "topic": "go", "extra": true}`, "additional properties 'extra' not allowed"},
		{"a nested wrong type", `{"count": 2, "topic": "go", "box": {"size": "big"}}`, "at /box/size: got string, want integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := ts.do(http.MethodPost, "/workflows/typed/runs", "", "application/json", `{"input": `+tc.input+`, "stream": false}`)
			require.Equal(t, http.StatusUnprocessableEntity, code, body)
			require.Contains(t, body, "the input does not match workflow typed's input schema")
			require.Contains(t, body, tc.want)
		})
	}
	var listed []wfRun
	ts.json(http.MethodGet, "/workflows/typed/runs", "", "", http.StatusOK, &listed)
	require.Len(t, listed, 2, "the refused input started no run")
}

// The workflows of TestWorkflowStructuredOutput: output.schema over an
// agent's structured answer, over a template, and violated two ways.
const structuredWorkflowSpecs = `
kind: Agent
name: judge
model: echo
output_schema:
  type: object
  properties: {title: {type: string}}
  required: [title]
---
kind: Workflow
name: shaped
steps:
  - {name: verdict, agent: judge}
output:
  schema:
    type: object
    properties: {title: {type: string}}
    required: [title]
---
kind: Workflow
name: templated
steps:
  - {name: draft, agent: writer, input: "draft"}
output:
  template: "{{ {'text': steps.draft.output, 'size': size(steps.draft.output)} }}"
  schema:
    type: object
    properties: {text: {type: string}, size: {type: integer, minimum: 1}}
    required: [text, size]
    additionalProperties: false
---
kind: Workflow
name: wrong
steps:
  - {name: draft, agent: writer, input: "draft"}
output:
  template: "{{ {'title': size(steps.draft.output)} }}"
  schema:
    type: object
    properties: {title: {type: string}}
---
kind: Workflow
name: prose
steps:
  - {name: draft, agent: writer, input: "draft"}
output: {schema: {type: object}}
`

// TestWorkflowStructuredOutput: with output.schema, a valid output is stored
// as its JSON; an invalid one ends the run with WorkflowError naming the
// violated path; the schema shows in GET /workflows/{id} and in OpenAPI.
func TestWorkflowStructuredOutput(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(structuredWorkflowSpecs))
	draft := "system=Write.|user=draft|history=0"
	for _, tc := range []struct {
		workflow string
		content  map[string]any // nil: the run fails
		error    string
	}{
		{workflow: "shaped", content: map[string]any{"title": "Echo: go"}},
		{workflow: "templated", content: map[string]any{"text": draft, "size": float64(len(draft))}},
		{workflow: "wrong", error: "the output does not match output.schema: at /title: got number, want string"},
		{workflow: "prose", error: "the output is not JSON, but output.schema requires it"},
	} {
		t.Run(tc.workflow, func(t *testing.T) {
			t.Parallel()
			frames, hdr := ts.stream("/workflows/"+tc.workflow+"/runs", "", "application/json", `{"message": "go"}`)
			last := frames[len(frames)-1]
			var run wfRun
			ts.json(http.MethodGet, "/workflows/"+tc.workflow+"/runs/"+hdr.Get("X-Run-Id"), "", "", http.StatusOK, &run)
			if tc.content == nil {
				require.Equal(t, "WorkflowError", last.Event, last.Data)
				require.Contains(t, last.Data["content"], tc.error)
				require.Equal(t, "ERROR", run.Status)
				require.Contains(t, run.Error, tc.error)
				return
			}
			require.Equal(t, "WorkflowCompleted", last.Event, last.Data)
			require.Equal(t, "COMPLETED", run.Status)
			var got map[string]any
			require.NoError(t, json.Unmarshal([]byte(run.Content), &got), run.Content)
			require.Equal(t, tc.content, got)
			require.Equal(t, run.Content, last.Data["content"])
		})
	}

	var w struct {
		Output       string         `json:"output"`
		OutputSchema map[string]any `json:"output_schema"`
	}
	ts.json(http.MethodGet, "/workflows/templated", "", "", http.StatusOK, &w)
	require.Equal(t, []any{"text", "size"}, w.OutputSchema["required"])
	require.Contains(t, w.Output, "steps.draft.output")

	// The console's workflow page shows the output schema too.
	resp, body := ts.page("GET", "/ui/workflows/templated", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	d := doc(t, body)
	require.Contains(t, d.Find("[data-testid=output-schema]").Text(), `"required": [`)
	require.Contains(t, d.Find("[data-testid=workflow-output]").Text(), "steps.draft.output")

	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	schema := doc.Paths["/workflows/shaped/runs"]["post"].Responses["200"].Content["application/json"].Schema
	parts := schema["allOf"].([]any)
	require.Len(t, parts, 2)
	content := parts[1].(map[string]any)["properties"].(map[string]any)["content"].(map[string]any)
	require.Equal(t, "application/json", content["contentMediaType"])
	require.Equal(t, []any{"title"}, content["contentSchema"].(map[string]any)["required"])
}

// TestWorkflowContinueRace: racing continue requests on a PAUSED run, sent
// to two servers sharing one database: exactly one wins (202), the others
// get 409, and the decision recorded and acted on is the winner's.
func TestWorkflowContinueRace(t *testing.T) {
	t.Parallel()
	for name, setup := range replicaDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := setup(t)
			servers := []*testServer{startServer(t, withDatabase(dsn), withSpecs(runWorkflowSpecs)), startServer(t, withDatabase(dsn), withSpecs(runWorkflowSpecs))}
			frames, hdr := servers[0].stream("/workflows/review/runs", "", "application/json", `{"message": "race"}`)
			require.Equal(t, "WorkflowPaused", frames[len(frames)-1].Event)
			id := hdr.Get("X-Run-Id")

			const n = 8
			codes := make([]int, n)
			var wg sync.WaitGroup
			ready := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-ready
					codes[i], _, _ = servers[i%2].do(http.MethodPost, "/workflows/review/runs/"+id+"/continue", "", "application/json",
						fmt.Sprintf(`{"approved": true, "comment": "reviewer%d"}`, i))
				})
			}
			close(ready)
			wg.Wait()
			winner := -1
			for i, code := range codes {
				switch code {
				case http.StatusAccepted:
					require.Equal(t, -1, winner, "only one continue wins: %v", codes)
					winner = i
				default:
					require.Equal(t, http.StatusConflict, code, "the losers get 409: %v", codes)
				}
			}
			require.NotEqual(t, -1, winner, "one continue wins: %v", codes)

			var run wfRun
			require.Eventually(t, func() bool {
				servers[1].json(http.MethodGet, "/workflows/review/runs/"+id, "", "", http.StatusOK, &run)
				return run.Status == "COMPLETED" || run.Status == "ERROR" || run.Status == "CANCELLED"
			}, 10*time.Second, 20*time.Millisecond)
			require.Equal(t, "COMPLETED", run.Status, run.Error)
			require.Len(t, run.Steps, 3)
			require.JSONEq(t, fmt.Sprintf(`{"approved": true, "comment": "reviewer%d"}`, winner), string(run.Steps[1].Output), "the recorded decision is the winner's")
			require.Equal(t, fmt.Sprintf("system=Write.|user=publish reviewer%d|history=0", winner), run.Content)
		})
	}
}

// TestWorkflowPausedTrace: the trace of a run paused at an approval step
// says so (its root span and the approval step's span carry troupe.paused;
// neither is failed), and the continuation's trace links to the paused
// execution's root span.
func TestWorkflowPausedTrace(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs))
	frames, hdr := ts.stream("/workflows/review/runs", "", "application/json", `{"message": "traced"}`)
	require.Equal(t, "WorkflowPaused", frames[len(frames)-1].Event)
	id, pausedTrace := hdr.Get("X-Run-Id"), hdr.Get("X-Trace-Id")
	require.NotEmpty(t, pausedTrace)
	trace := func(traceID string) traceNode {
		var got struct {
			Tree []traceNode `json:"tree"`
		}
		require.Eventually(t, func() bool {
			status, body, _ := ts.do(http.MethodGet, "/traces/"+traceID, "", "", "")
			return status == http.StatusOK && json.Unmarshal([]byte(body), &got) == nil && len(got.Tree) == 1
		}, 10*time.Second, 20*time.Millisecond)
		return got.Tree[0]
	}
	paused := trace(pausedTrace)
	require.Equal(t, "workflow.run review", paused.Name)
	require.Equal(t, "OK", paused.Status, "a pause is no failure")
	require.Equal(t, "true", paused.Attributes["troupe.paused"])
	steps := map[string]traceNode{}
	for _, s := range paused.Spans {
		steps[s.Name] = s
	}
	require.Equal(t, "OK", steps["workflow.step ok"].Status)
	require.Equal(t, "true", steps["workflow.step ok"].Attributes["troupe.paused"], "the approval step waits")
	require.Empty(t, steps["workflow.step draft"].Attributes["troupe.paused"], "the draft step finished")

	code, body, _ := ts.do(http.MethodPost, "/workflows/review/runs/"+id+"/continue", "", "application/json", `{"approved": true, "comment": "go"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	var list struct {
		Data []struct {
			TraceID string `json:"trace_id"`
		} `json:"data"`
	}
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/traces?run_id="+id, "", "", http.StatusOK, &list)
		return len(list.Data) == 2
	}, 10*time.Second, 20*time.Millisecond, "the continuation has a trace of its own")
	require.Equal(t, pausedTrace, list.Data[1].TraceID, "newest first")
	continued := trace(list.Data[0].TraceID)
	require.Equal(t, "workflow.run review", continued.Name)
	require.Equal(t, "OK", continued.Status)
	require.Empty(t, continued.Attributes["troupe.paused"])
	require.Equal(t, pausedTrace, continued.Attributes["link.trace_id"], "the continuation links to the paused execution")
	require.Equal(t, paused.SpanID, continued.Attributes["link.span_id"])
}

// TestWorkflowNestedApproval: an approval inside a nested workflow pauses
// the outer run; continued, the outer run resumes in the same child run, so
// the session holds one run of the nested workflow, completed.
func TestWorkflowNestedApproval(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs+`
---
kind: Workflow
name: outer_review
steps:
  - {name: inner, workflow: review, input: "{{ message }}"}
  - {name: after, agent: writer, input: "after {{ steps.inner.output }}"}
`))
	const v = "system=Write.|user=%s|history=0"
	frames, hdr := ts.stream("/workflows/outer_review/runs", "", "application/json", `{"message": "nest"}`)
	require.Equal(t, "WorkflowPaused", frames[len(frames)-1].Event)
	require.Equal(t, "Publish "+fmt.Sprintf(v, "draft nest")+"?", frames[len(frames)-1].Data["content"])
	id, sid := hdr.Get("X-Run-Id"), hdr.Get("X-Session-Id")
	var run wfRun
	ts.json(http.MethodGet, "/workflows/outer_review/runs/"+id, "", "", http.StatusOK, &run)
	require.Equal(t, "PAUSED", run.Status)

	code, body, _ := ts.do(http.MethodPost, "/workflows/outer_review/runs/"+id+"/continue", "", "application/json", `{"approved": true, "comment": "deep"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/workflows/outer_review/runs/"+id, "", "", http.StatusOK, &run)
		return run.Status == "COMPLETED" || run.Status == "ERROR" || run.Status == "CANCELLED"
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	require.Equal(t, fmt.Sprintf(v, "after "+fmt.Sprintf(v, "publish deep")), run.Content)
	var paths []string
	for _, s := range run.Steps {
		paths = append(paths, s.Path+":"+s.Status)
	}
	require.Equal(t, []string{"inner:COMPLETED", "inner/draft:COMPLETED", "inner/ok:COMPLETED", "inner/publish:COMPLETED", "after:COMPLETED"}, paths)

	var runs []struct {
		RunID       string `json:"run_id"`
		ParentRunID string `json:"parent_run_id"`
		WorkflowID  string `json:"workflow_id"`
		AgentID     string `json:"agent_id"`
		Status      string `json:"status"`
	}
	ts.json(http.MethodGet, "/sessions/"+sid+"/runs", "", "", http.StatusOK, &runs)
	var nested []string
	for _, r := range runs {
		if r.ParentRunID == id && r.WorkflowID == "review" {
			nested = append(nested, r.RunID+":"+r.Status)
		}
	}
	require.Equal(t, []string{id + "-inner:COMPLETED"}, nested, "one child run of the nested workflow, updated by the continuation: %+v", runs)
}

// TestWorkflowStateAcrossApproval: set_state of the steps before an
// approval counts once for the run: the continuation replays it from the
// state the run started with, not on top of a state already holding it.
func TestWorkflowStateAcrossApproval(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs+`
---
kind: Workflow
name: counted_review
steps:
  - name: count
    agent: writer
    input: "count"
    set_state: {n: "(has(state.n) ? state.n : 0) + 1"}
  - {name: ok, approval: "Go?"}
  - {name: report, agent: writer, input: "n={{ state.n }}"}
`))
	frames, hdr := ts.stream("/workflows/counted_review/runs", "", "application/json", `{"message": "x", "session_id": "counted"}`)
	require.Equal(t, "WorkflowPaused", frames[len(frames)-1].Event)
	id := hdr.Get("X-Run-Id")
	code, body, _ := ts.do(http.MethodPost, "/workflows/counted_review/runs/"+id+"/continue", "", "application/json", `{"approved": true}`)
	require.Equal(t, http.StatusAccepted, code, body)
	var run wfRun
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/workflows/counted_review/runs/"+id, "", "", http.StatusOK, &run)
		return run.Status == "COMPLETED" || run.Status == "ERROR" || run.Status == "CANCELLED"
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	require.Equal(t, "system=Write.|user=n=1|history=0", run.Content, "the count step ran once: its set_state counts once")
}
