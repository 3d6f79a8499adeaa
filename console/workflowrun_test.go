package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

// stepModel answers "did <message>", fails a message containing "fail"
// and holds one containing "hold" until release is closed, so a test sees
// a workflow between its steps.
type stepModel struct{ release chan struct{} }

func (m *stepModel) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	last := ""
	if n := len(req.Messages); n > 0 {
		last = req.Messages[n-1].Content
	}
	if strings.Contains(last, "fail") {
		return nil, errors.New("the model refused: fail")
	}
	if strings.Contains(last, "hold") {
		select {
		case <-m.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := "did " + last
	if onDelta != nil {
		onDelta(model.Delta{Content: out})
	}
	return &model.Response{Content: out, StopReason: "stop"}, nil
}

// The workflows of the runner tests, on stepModel.
const runnerSpecs = `
kind: Model
name: stepping
provider: anthropic
model: stepping
api_key: sk-test
---
kind: Agent
name: stepper
model: stepping
---
kind: Workflow
name: gated
steps:
  - {name: first, agent: stepper, input: "first {{ message }}"}
  - {name: held, agent: stepper, input: "hold {{ message }}"}
  - {name: last, agent: stepper, input: "last {{ message }}"}
---
kind: Workflow
name: looped
input:
  type: object
  properties: {items: {type: array, items: {type: string}}}
  required: [items]
steps:
  - {name: begin, agent: stepper, input: "begin"}
  - name: each_item
    loop:
      over: "input.items"
      as: it
      max: 5
      steps: [{name: work, agent: stepper, input: "work {{ it }}"}]
---
kind: Workflow
name: approve
input:
  type: object
  properties:
    topic: {type: string}
    urgent: {type: boolean}
  required: [topic]
steps:
  - {name: draft, agent: stepper, input: "draft {{ input.topic }}"}
  - name: ok
    approval: {message: "Publish {{ steps.draft.output }}?"}
  - {name: publish, agent: stepper, input: "publish {{ steps.ok.output.comment }}"}
`

func startRunner(t testing.TB, opts ...serverOption) (*testServer, *stepModel) {
	m := &stepModel{release: make(chan struct{})}
	return startServer(t, append([]serverOption{withProvider("anthropic", m), withSpecs(runnerSpecs)}, opts...)...), m
}

// runWorkflowAPI runs a workflow to its end through the API and returns its
// run id and its steps as GET …/runs/{run_id} shows them.
func runWorkflowAPI(t *testing.T, ts *testServer, name, body string) (string, string, []runStepRow) {
	t.Helper()
	_, out, _ := ts.do(http.MethodPost, "/workflows/"+name+"/runs", "", "application/json", body)
	var run struct {
		RunID string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &run), out)
	require.NotEmpty(t, run.RunID, out)
	var got struct {
		Status string       `json:"status"`
		Steps  []runStepRow `json:"steps"`
	}
	ts.json(http.MethodGet, "/workflows/"+name+"/runs/"+run.RunID, "", "", http.StatusOK, &got)
	return run.RunID, got.Status, got.Steps
}

// TestWorkflowRunPage: the run page shows every step execution the store
// checkpointed (parallel branches, a condition's branch, loop iterations, a
// failed step) with its path, status, attempts, input, output, duration
// and trace link, and colours the graph by status.
func TestWorkflowRunPage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, workflow, body, status string
		setup                        func(t *testing.T, ts *testServer)
		paths                        []string
		graph                        map[string]string
		failed                       string
	}{
		{
			name: "briefing example", workflow: "briefing", body: `{"input":{"topic":"owls"},"stream":false}`, status: "COMPLETED",
			setup: func(t *testing.T, ts *testServer) {
				require.NoError(t, os.Remove(filepath.Join(ts.dir, "specs.yaml")))
				for _, f := range []string{"research.yaml", "briefing.yaml"} {
					b, err := os.ReadFile(filepath.Join("..", "agents.d", f))
					require.NoError(t, err)
					require.NoError(t, os.WriteFile(filepath.Join(ts.dir, f), b, 0o644))
				}
				ts.json(http.MethodPost, "/config/reload", "", "", http.StatusOK, nil)
			},
			paths: []string{"research", "short", "long", "drafts", "too_little", "check"},
			graph: map[string]string{"research": "COMPLETED", "long": "COMPLETED", "too_little": "COMPLETED", "publish": "SKIPPED"},
		},
		{
			name: "loop with a failed step", workflow: "looped", body: `{"input":{"items":["a","fail"]},"stream":false}`, status: "ERROR",
			paths:  []string{"begin", "each_item[0]/work", "each_item[1]/work", "each_item"},
			graph:  map[string]string{"begin": "COMPLETED", "work": "ERROR", "each_item": "ERROR"},
			failed: "each_item[1]/work",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts, _ := startRunner(t)
			if tc.setup != nil {
				tc.setup(t, ts)
			}
			runID, status, steps := runWorkflowAPI(t, ts, tc.workflow, tc.body)
			require.Equal(t, tc.status, status)
			resp, body := ts.page("GET", "/ui/workflows/"+tc.workflow+"/runs/"+runID, "", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			d := doc(t, body)
			require.Equal(t, tc.status, d.Find("[data-testid=workflow-run-page]").AttrOr("data-status", ""))
			require.Equal(t, "/ui/runs/"+runID+"/trace", d.Find("[data-testid=run-trace]").AttrOr("href", ""))

			rows := d.Find("[data-testid=step-run]")
			require.Equal(t, len(steps), rows.Length(), "one row per checkpointed step execution")
			var paths []string
			rows.Each(func(i int, row *goquery.Selection) {
				s := steps[i]
				paths = append(paths, row.AttrOr("data-path", ""))
				require.Equal(t, s.Path, row.AttrOr("data-path", ""), "tree order: the order the store has")
				require.Equal(t, s.Status, row.AttrOr("data-status", ""), s.Path)
				require.Equal(t, s.Input, row.Find("[data-testid=step-input]").Text(), s.Path)
				var out any
				if len(s.Output) > 0 {
					require.NoError(t, json.Unmarshal(s.Output, &out))
				}
				if str, ok := out.(string); ok {
					require.Equal(t, str, row.Find("[data-testid=step-output]").Text(), s.Path)
				} else if out != nil {
					var shown any
					require.NoError(t, json.Unmarshal([]byte(row.Find("[data-testid=step-output]").Text()), &shown), s.Path)
					require.Equal(t, out, shown, s.Path)
				}
				require.Regexp(t, `\d`, row.Find("[data-testid=step-duration]").Text(), s.Path)
				require.Contains(t, row.Find("summary").Text(), " 1 attempt ", s.Path)
				require.True(t, strings.HasPrefix(row.Find("[data-testid=step-trace]").AttrOr("href", ""), "/ui/runs/"+runID+"/trace#step-"), s.Path)
				if s.Path == tc.failed {
					require.Contains(t, row.Find("[data-testid=step-error]").Text(), "the model refused: fail")
				}
			})
			require.ElementsMatch(t, tc.paths, paths)
			for step, want := range tc.graph {
				require.Equal(t, want, d.Find("[data-testid=workflow-graph] g[data-step="+step+"]").AttrOr("data-status", ""), step)
			}

			// The workflow's page lists the run.
			_, body = ts.page("GET", "/ui/workflows/"+tc.workflow, "", nil)
			link := doc(t, body).Find("[data-testid=workflow-run] [data-testid=run-link]")
			require.Equal(t, "/ui/workflows/"+tc.workflow+"/runs/"+runID, link.AttrOr("href", ""))

			// The trace links lead to the run's trace once it is stored,
			// each anchored at its step's span.
			var trace string
			require.Eventually(t, func() bool {
				resp, _ := ts.page("GET", "/ui/runs/"+runID+"/trace", "", nil)
				trace = resp.Header.Get("Location")
				return resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(trace, "/ui/traces/")
			}, 10*time.Second, 50*time.Millisecond)
			_, body = ts.page("GET", trace, "", nil)
			spans := doc(t, body)
			rows.Each(func(_ int, row *goquery.Selection) {
				_, anchor, _ := strings.Cut(row.Find("[data-testid=step-trace]").AttrOr("href", ""), "#")
				span := spans.Find("[data-testid=span]#" + strings.NewReplacer("[", `\[`, "]", `\]`).Replace(anchor))
				require.Equal(t, 1, span.Length(), anchor)
				require.Contains(t, span.Find(".span-name").Text(), "workflow.step "+row.Find("code").First().Text()[strings.LastIndex(row.Find("code").First().Text(), "/")+1:], anchor)
			})
		})
	}
}

// sseNamed reads a console stream's events as name and data.
func sseNamed(t *testing.T, body string) (names []string, data []map[string]string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			names = append(names, n)
		}
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var m map[string]string
			require.NoError(t, json.Unmarshal([]byte(d), &m))
			data = append(data, m)
		}
	}
	return names, data
}

// TestWorkflowRunnerStream reads the runner's event stream: each step's
// row and graph status as it starts and ends, then the outcome.
func TestWorkflowRunnerStream(t *testing.T) {
	t.Parallel()
	ts, m := startRunner(t)
	close(m.release)
	resp, body := ts.page("POST", "/ui/workflows/gated/run", "", url.Values{"message": {"go"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	names, data := sseNamed(t, body)
	require.Equal(t, "start", names[0])
	require.Equal(t, "end", names[len(names)-1])
	var statuses []string
	for i, n := range names {
		if n == "step" {
			statuses = append(statuses, data[i]["n"]+":"+data[i]["s"])
		}
	}
	require.Equal(t, []string{"first:RUNNING", "first:COMPLETED", "held:RUNNING", "held:COMPLETED", "last:RUNNING", "last:COMPLETED"}, statuses)
	require.Contains(t, names, "text", "the steps' agents stream into their rows")
	end := doc(t, data[len(data)-1]["h"])
	require.Contains(t, end.Find(".badge").First().Text(), "COMPLETED")
	require.Equal(t, "did last go", end.Find("[data-testid=run-output]").Text())

	// A typed input: the form's fields, checked.
	resp, body = ts.page("POST", "/ui/workflows/approve/run", "", url.Values{})
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	require.Equal(t, "Fill in topic: it is required.", body)
	resp, body = ts.page("POST", "/ui/workflows/approve/run", "", url.Values{"in.topic": {"owls"}, "in.urgent": {"true"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	names, data = sseNamed(t, body)
	end = doc(t, data[len(data)-1]["h"])
	require.Equal(t, "PAUSED", end.Find(".badge").First().Text())
	require.Contains(t, end.Find("[data-testid=approval]").Text(), "Publish did draft owls?")
	action := end.Find("[data-testid=approval] form").AttrOr("action", "")
	require.Regexp(t, `^/ui/workflows/approve/runs/[0-9a-f-]+/continue$`, action)
	require.Contains(t, names, "replace")
	require.Contains(t, body, `waiting for approval`)

	// Approve from the console: the run page follows the run to its end.
	resp, _ = ts.page("POST", action, "", url.Values{"approved": {"true"}, "comment": {"lgtm"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	runPage := resp.Header.Get("Location")
	require.Equal(t, strings.TrimSuffix(action, "/continue"), runPage)
	require.Eventually(t, func() bool {
		_, body := ts.page("GET", runPage, "", nil)
		return doc(t, body).Find("[data-testid=workflow-run-page]").AttrOr("data-status", "") == "COMPLETED"
	}, 10*time.Second, 50*time.Millisecond)
	_, body = ts.page("GET", runPage, "", nil)
	require.Equal(t, "did publish lgtm", doc(t, body).Find("[data-testid=step-run][data-path=publish] [data-testid=step-output]").Text())
	resp, _ = ts.page("POST", action, "", url.Values{"approved": {"true"}})
	require.Equal(t, http.StatusConflict, resp.StatusCode, "a finished run cannot be continued again")
}

// TestWorkflowRunnerNeedsRunScope: a key without agents:run sees the
// workflow but no runner, and cannot run it or approve.
func TestWorkflowRunnerNeedsRunScope(t *testing.T) {
	t.Parallel()
	ts, _ := startRunner(t, withKeys(keys))
	resp, body := ts.page("GET", "/ui/workflows/gated", readerKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	d := doc(t, body)
	require.Equal(t, 1, d.Find("[data-testid=run-denied]").Length())
	require.Equal(t, 0, d.Find("[data-testid=run-form]").Length())
	resp, _ = ts.page("POST", "/ui/workflows/gated/run", readerKey, url.Values{"message": {"go"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = ts.page("POST", "/ui/workflows/gated/runs/x/continue", readerKey, url.Values{"approved": {"true"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// pipelineRunPage runs pipeline (every step kind; see workflowSpecs) to its
// end or its approval and returns its run page, for the page-enumerating
// tests.
func pipelineRunPage(t *testing.T, ts *testServer, key string) string {
	t.Helper()
	_, out, _ := ts.do(http.MethodPost, "/workflows/pipeline/runs", key, "application/json", `{"input":{"topic":"owls","sections":["a","b"]},"stream":false}`)
	var run struct {
		RunID string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &run), out)
	require.NotEmpty(t, run.RunID, out)
	return "/ui/workflows/pipeline/runs/" + run.RunID
}
