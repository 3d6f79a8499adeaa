package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// wfCostSpecs price the scripted model at $3 / $15 per million tokens; the
// workflows run priced agents across a pause, under a budget of their own.
const wfCostSpecs = `
---
kind: Model
name: priced
provider: anthropic
model: scripted
api_key: sk-test
pricing: {input: 3, output: 15}
---
kind: Budget
name: wfpot
limits: {tokens: 100000}
---
kind: Agent
name: pw
model: priced
---
kind: Workflow
name: reviewed
budgets: [wfpot]
steps:
  - {name: draft, agent: pw, input: "draft {{ message }}"}
  - name: ok
    approval: {message: "Publish?"}
  - {name: publish, agent: pw, input: "publish"}
---
kind: Agent
name: pclerk
model: priced
tools: [refund]
---
kind: Workflow
name: paid_refunds
budgets: [wfpot]
steps:
  - {name: note, agent: pw, input: "note {{ message }}"}
  - {name: refund, agent: pclerk}
`

// wfCostRun is a workflow run's stored usage as GET …/runs/{run_id} gives it.
type wfCostRun struct {
	wfRun
	Metrics struct {
		InputTokens   int     `json:"input_tokens"`
		OutputTokens  int     `json:"output_tokens"`
		TotalTokens   int     `json:"total_tokens"`
		ModelRequests int     `json:"model_requests"`
		ToolCalls     int     `json:"tool_calls"`
		Cost          float64 `json:"cost"`
		CostUnknown   bool    `json:"cost_unknown"`
	} `json:"metrics"`
}

// price is the cost in USD of in and out tokens at $3 / $15 per million.
func price(in, out int) float64 { return (float64(in)*3 + float64(out)*15) / 1e6 }

// TestWorkflowCostAcrossPauses: a workflow run's stored tokens and cost are
// the whole run's, not its last execution's: the steps that finished before
// an approval step, and a step's agent run that paused on a tool approval
// and continued on its own, count once each; the Spend page and the
// workflow's budget show the same figures.
func TestWorkflowCostAcrossPauses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		workflow string
		steps    []fake.Step
		repeat   fake.Step
		// resume decides the pause of run id.
		resume               func(t *testing.T, ts *testServer, id string)
		in, out, requests    int
		toolCalls, stepsDone int
		// budgetIn and budgetOut are the tokens counted against the
		// workflow's budget.
		budgetIn, budgetOut int
	}{
		{
			name: "approval step", workflow: "reviewed",
			steps:  []fake.Step{{Content: "drafted", Usage: model.Usage{InputTokens: 1000, OutputTokens: 100}}},
			repeat: fake.Step{Content: "published", Usage: model.Usage{InputTokens: 500, OutputTokens: 50}},
			resume: func(t *testing.T, ts *testServer, id string) {
				code, body, _ := ts.do(http.MethodPost, "/workflows/reviewed/runs/"+id+"/continue", "", "application/json", `{"approved": true}`)
				require.Equal(t, http.StatusAccepted, code, body)
			},
			in: 1500, out: 150, requests: 2, stepsDone: 3, budgetIn: 1500, budgetOut: 150,
		},
		{
			name: "step held on a tool approval", workflow: "paid_refunds",
			steps: []fake.Step{
				{Content: "noted", Usage: model.Usage{InputTokens: 1000, OutputTokens: 100}},
				{ToolCalls: []model.ToolCall{refundCall}, Usage: model.Usage{InputTokens: 100, OutputTokens: 10}},
			},
			repeat: fake.Step{Content: "clerk done", Usage: model.Usage{InputTokens: 200, OutputTokens: 20}},
			resume: func(t *testing.T, ts *testServer, id string) {
				var list struct{ Data []approvalRecord }
				ts.json(http.MethodGet, "/approvals?status=pending&agent_id=pclerk", "", "", http.StatusOK, &list)
				require.Len(t, list.Data, 1)
				ts.json(http.MethodPost, "/approvals/"+list.Data[0].ID+"/resolve", "", `{"approved":true}`, http.StatusOK, nil)
			},
			in: 1300, out: 130, requests: 3, toolCalls: 1, stepsDone: 2,
			// The held run's answer after its continue counts against its
			// own agent's budgets, not the workflow's.
			budgetIn: 1100, budgetOut: 110,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "refunded") }))
			t.Cleanup(srv.Close)
			script := fake.New(tc.steps...)
			script.Repeat = &tc.repeat
			ts := startServer(t, withProvider("anthropic", script), withSpecs(fmt.Sprintf(approvalSpecs, srv.URL, "1h")+wfCostSpecs))

			var r runState
			ts.json(http.MethodPost, "/workflows/"+tc.workflow+"/runs", "", `{"message":"go","stream":false}`, http.StatusOK, &r)
			require.Equal(t, "PAUSED", r.Status, r.Error)
			tc.resume(t, ts, r.RunID)
			done := waitWorkflow(t, ts, tc.workflow, r.RunID)
			require.Equal(t, "COMPLETED", done.Status, done.Error)
			require.Len(t, script.Requests(), tc.requests, "no step ran twice")

			var run wfCostRun
			ts.json(http.MethodGet, "/workflows/"+tc.workflow+"/runs/"+r.RunID, "", "", http.StatusOK, &run)
			require.Len(t, run.Steps, tc.stepsDone)
			require.Equal(t, tc.in, run.Metrics.InputTokens)
			require.Equal(t, tc.out, run.Metrics.OutputTokens)
			require.Equal(t, tc.in+tc.out, run.Metrics.TotalTokens)
			require.Equal(t, tc.requests, run.Metrics.ModelRequests)
			require.Equal(t, tc.toolCalls, run.Metrics.ToolCalls)
			require.InDelta(t, price(tc.in, tc.out), run.Metrics.Cost, 1e-12)
			require.False(t, run.Metrics.CostUnknown)

			// The Spend page sums top-level runs: the workflow's, whole.
			resp, body := ts.page(http.MethodGet, "/ui/spend", "", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			rows := spendRows(doc(t, body), "spend-components")
			require.Equal(t, spendRow{fmt.Sprintf("$%g", price(tc.in, tc.out)), "1", fmt.Sprint(tc.in + tc.out)}, rows[tc.workflow], rows)

			// Each step's usage reached the workflow's budget when it ran,
			// and the resumed execution recorded no restored step again.
			var b struct {
				Usage []struct {
					Tokens int     `json:"tokens"`
					Cost   float64 `json:"cost"`
				} `json:"usage"`
			}
			ts.json(http.MethodGet, "/budgets/wfpot", "", "", http.StatusOK, &b)
			require.Len(t, b.Usage, 1)
			require.Equal(t, tc.budgetIn+tc.budgetOut, b.Usage[0].Tokens)
			require.InDelta(t, price(tc.budgetIn, tc.budgetOut), b.Usage[0].Cost, 1e-12)
		})
	}
}
