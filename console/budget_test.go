package console_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// budgetSpecs price the scripted model at $3 / $15 per million tokens.
const budgetSpecs = `kind: Model
name: priced
provider: anthropic
model: scripted
api_key: sk-test
pricing: {input: 3, output: 15}
---
kind: Budget
name: daily-user
per: user
period: day
limits: {cost: 0.001}
---
kind: Budget
name: pot
limits: {tokens: 100}
---
kind: Budget
name: per-run
per: run
limits: {tool_calls: 1, tokens: 1000}
---
kind: Agent
name: spender
model: priced
budgets: [daily-user]
---
kind: Agent
name: left
model: priced
budgets: [pot]
---
kind: Agent
name: right
model: priced
budgets: [pot]
---
kind: Agent
name: worker
model: priced
tools: [calculator]
budgets: [per-run]
`

type budgetRun struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
	Metrics   struct {
		InputTokens  int     `json:"input_tokens"`
		OutputTokens int     `json:"output_tokens"`
		Cost         float64 `json:"cost"`
	} `json:"metrics"`
}

// runAs streams a run of agent for user and returns its frames' event names,
// the terminal frame and the run id.
func runAs(t *testing.T, ts *testServer, agent, user string) ([]string, frame) {
	t.Helper()
	fs, _ := ts.stream("/agents/"+agent+"/runs", "", "application/json", `{"message":"go","stream":true,"user_id":"`+user+`"}`)
	require.NotEmpty(t, fs)
	return names(fs), fs[len(fs)-1]
}

func requireFrame(t *testing.T, fs []string, name string) {
	t.Helper()
	require.Contains(t, fs, name)
}

// TestUserBudgetStopsTheRunAfterTheOneThatCrossedIt: alice's first run
// costs $0.0021 (200 in × $3 + 100 out × $15, per million), over her $0.001
// a day; it completes, carrying its cost into the stored run, the session,
// the run's trace and the daily metrics. Her next run is refused before any
// model call, with a BudgetExceeded event and a budget_exceeded RunError;
// bob's run is unaffected.
func TestUserBudgetStopsTheRunAfterTheOneThatCrossedIt(t *testing.T) {
	t.Parallel()
	script := fake.New(
		fake.Step{Content: "first", Usage: model.Usage{InputTokens: 200, OutputTokens: 100}},
		fake.Step{Content: "bob's", Usage: model.Usage{InputTokens: 10, OutputTokens: 10}},
	)
	ts := startServer(t, withProvider("anthropic", script), withSpecs(budgetSpecs))

	evs, last := runAs(t, ts, "spender", "alice")
	require.Equal(t, "RunCompleted", last.Event, evs)
	runID, sessionID := last.Data["run_id"].(string), last.Data["session_id"].(string)
	const want = 200*3.0/1e6 + 100*15.0/1e6
	require.InDelta(t, want, last.Data["metrics"].(map[string]any)["cost"], 1e-12)

	var run budgetRun
	ts.json(http.MethodGet, "/agents/spender/runs/"+runID, "", "", http.StatusOK, &run)
	require.Equal(t, "COMPLETED", run.Status)
	require.InDelta(t, want, run.Metrics.Cost, 1e-12, "the stored run's cost")
	var sess struct {
		Cost float64 `json:"cost"`
	}
	ts.json(http.MethodGet, "/sessions/"+sessionID, "", "", http.StatusOK, &sess)
	require.InDelta(t, want, sess.Cost, 1e-12, "the session's cost")

	var daily struct {
		Metrics []struct {
			TokenMetrics struct {
				Cost float64 `json:"cost"`
			} `json:"token_metrics"`
			ModelMetrics []struct {
				ModelID string  `json:"model_id"`
				Cost    float64 `json:"cost"`
			} `json:"model_metrics"`
		} `json:"metrics"`
	}
	ts.json(http.MethodGet, "/metrics", "", "", http.StatusOK, &daily)
	require.Len(t, daily.Metrics, 1)
	require.InDelta(t, want, daily.Metrics[0].TokenMetrics.Cost, 1e-12, "the day's cost")
	require.Len(t, daily.Metrics[0].ModelMetrics, 1)
	require.InDelta(t, want, daily.Metrics[0].ModelMetrics[0].Cost, 1e-12)

	var list struct {
		Data []map[string]any `json:"data"`
	}
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/traces?run_id="+runID, "", "", http.StatusOK, &list)
		return len(list.Data) == 1
	}, 10*time.Second, 20*time.Millisecond)
	var trace struct {
		Tree []traceNode `json:"tree"`
	}
	ts.json(http.MethodGet, "/traces/"+list.Data[0]["trace_id"].(string), "", "", http.StatusOK, &trace)
	require.Len(t, trace.Tree, 1)
	root := trace.Tree[0]
	require.Equal(t, "0.0021", root.Attributes["cost_usd"], "the run span's cost")
	require.NotEmpty(t, root.Spans)
	require.Equal(t, "model", root.Spans[0].Kind)
	require.Equal(t, "0.0021", root.Spans[0].Attributes["cost_usd"], "the model span's cost")

	evs, last = runAs(t, ts, "spender", "alice")
	require.Equal(t, "RunError", last.Event, evs)
	require.Equal(t, "budget_exceeded", last.Data["error_type"])
	require.Contains(t, last.Data["content"], "budget daily-user exceeded")
	requireFrame(t, evs, "BudgetExceeded")
	require.NotContains(t, evs, "ModelRequestCompleted")
	require.Len(t, script.Requests(), 1, "the refused run made no model call")

	evs, last = runAs(t, ts, "spender", "bob")
	require.Equal(t, "RunCompleted", last.Event, evs)
	require.Equal(t, "bob's", last.Data["content"])
	require.Len(t, script.Requests(), 2)

	var b struct {
		Window string `json:"window"`
		Limits struct {
			Cost float64 `json:"cost"`
		} `json:"limits"`
		Usage []struct {
			Scope  string  `json:"scope"`
			Cost   float64 `json:"cost"`
			Tokens int     `json:"tokens"`
		} `json:"usage"`
	}
	ts.json(http.MethodGet, "/budgets/daily-user", "", "", http.StatusOK, &b)
	require.Equal(t, time.Now().UTC().Format("2006-01-02"), b.Window)
	require.InDelta(t, 0.001, b.Limits.Cost, 1e-12)
	require.Len(t, b.Usage, 2)
	require.Equal(t, "user:alice", b.Usage[0].Scope)
	require.InDelta(t, want, b.Usage[0].Cost, 1e-12)
	require.Equal(t, 300, b.Usage[0].Tokens)
	require.Equal(t, "user:bob", b.Usage[1].Scope)
	require.Equal(t, 20, b.Usage[1].Tokens)
	ts.json(http.MethodGet, "/budgets/nope", "", "", http.StatusNotFound, nil)
}

// TestBudgetSharedPotAcrossAgents: two agents reference one per-all budget
// of 100 tokens; the first spends 150 and completes, the other is refused.
func TestBudgetSharedPotAcrossAgents(t *testing.T) {
	t.Parallel()
	script := fake.New(fake.Step{Content: "spent", Usage: model.Usage{InputTokens: 100, OutputTokens: 50}})
	ts := startServer(t, withProvider("anthropic", script), withSpecs(budgetSpecs))

	evs, last := runAs(t, ts, "left", "alice")
	require.Equal(t, "RunCompleted", last.Event, evs)
	evs, last = runAs(t, ts, "right", "bob")
	require.Equal(t, "RunError", last.Event, evs)
	require.Equal(t, "budget_exceeded", last.Data["error_type"])
	require.Contains(t, last.Data["content"], "budget pot exceeded: tokens 150 of 100 used")
	require.Len(t, script.Requests(), 1)
}

// TestRunBudgetEndsTheRunBeforeTheNextModelCall: a per-run budget of one
// tool call lets the model's two concurrent calls finish (never mid-tool)
// and ends the run before the model call that would read their results.
func TestRunBudgetEndsTheRunBeforeTheNextModelCall(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		step  fake.Step
		limit string
	}{
		{"tool calls", fake.Step{ToolCalls: []model.ToolCall{
			{ID: "c1", Name: "calculator", Arguments: `{"expression":"6*7"}`},
			{ID: "c2", Name: "calculator", Arguments: `{"expression":"2+2"}`},
		}, Usage: model.Usage{InputTokens: 10, OutputTokens: 10}}, "tool_calls"},
		{"tokens", fake.Step{ToolCalls: []model.ToolCall{{ID: "c1", Name: "calculator", Arguments: `{"expression":"6*7"}`}},
			Usage: model.Usage{InputTokens: 900, OutputTokens: 200}}, "tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := fake.New(tc.step, fake.Step{Content: "never asked"})
			ts := startServer(t, withProvider("anthropic", script), withSpecs(budgetSpecs))
			fs, _ := ts.stream("/agents/worker/runs", "", "application/json", `{"message":"go","stream":true}`)
			evs := names(fs)
			last := fs[len(fs)-1]
			require.Equal(t, "RunError", last.Event, evs)
			require.Equal(t, "budget_exceeded", last.Data["error_type"])
			completed := 0
			for i, f := range fs {
				if f.Event == "ToolCallCompleted" {
					completed++
				}
				if f.Event == "BudgetExceeded" {
					require.Equal(t, len(tc.step.ToolCalls), completed, "every tool call finished before the refusal")
					require.Equal(t, tc.limit, f.Data["budget"].(map[string]any)["limit"])
					require.Equal(t, len(fs)-2, i)
				}
			}
			requireFrame(t, evs, "BudgetExceeded")
			require.Len(t, script.Requests(), 1, "no model call after the limit")
		})
	}
}

// TestBudgetHoldsAcrossReplicas: two servers on one database (PostgreSQL
// when configured, and a shared SQLite file). Alice's run on A crosses her
// daily budget; her next run, on B, is refused before any model call,
// because B reads the counters A's run wrote.
func TestBudgetHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	for name, database := range replicaDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := database(t)
			scriptA := fake.New(fake.Step{Content: "first", Usage: model.Usage{InputTokens: 200, OutputTokens: 100}})
			scriptB := fake.New(fake.Step{Content: "bob's", Usage: model.Usage{InputTokens: 10, OutputTokens: 10}})
			a := startServer(t, withDatabase(dsn), withProvider("anthropic", scriptA), withSpecs(budgetSpecs))
			b := startServer(t, withDatabase(dsn), withProvider("anthropic", scriptB), withSpecs(budgetSpecs))

			evs, last := runAs(t, a, "spender", "alice")
			require.Equal(t, "RunCompleted", last.Event, evs)
			evs, last = runAs(t, b, "spender", "alice")
			require.Equal(t, "RunError", last.Event, evs)
			require.Equal(t, "budget_exceeded", last.Data["error_type"])
			require.Empty(t, scriptB.Requests(), "replica B made no model call for alice")
			evs, last = runAs(t, b, "spender", "bob")
			require.Equal(t, "RunCompleted", last.Event, evs)
		})
	}
}

const groupBudgetSpecs = `kind: Model
name: priced
provider: anthropic
model: scripted
api_key: sk-test
pricing: {input: 3, output: 15}
---
kind: Agent
name: member
model: priced
---
kind: Team
name: crew2
mode: route
members: [member]
model: priced
budgets: [team-pot]
---
kind: Budget
name: team-pot
per: team
limits: {tokens: 250}
---
kind: Workflow
name: pair
budgets: [wf-pot]
steps:
  - {name: one, agent: member, input: "a"}
  - {name: two, agent: member, input: "b"}
---
kind: Budget
name: wf-pot
limits: {tokens: 150}
`

// TestTeamRunCostsItsMembersAndItsBudgetGovernsThem: a routed team run
// costs the leader's call plus the member's; the team's budget counts both
// and refuses the team's next run before the leader's model call.
func TestTeamRunCostsItsMembersAndItsBudgetGovernsThem(t *testing.T) {
	t.Parallel()
	script := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{{ID: "r1", Name: "route_to_member", Arguments: `{"member":"member","task":"answer"}`}}, Usage: model.Usage{InputTokens: 100}},
		fake.Step{Content: "member's answer", Usage: model.Usage{InputTokens: 100, OutputTokens: 100}},
	)
	ts := startServer(t, withProvider("anthropic", script), withSpecs(groupBudgetSpecs))
	fs, _ := ts.stream("/teams/crew2/runs", "", "application/json", `{"message":"go","stream":true}`)
	last := fs[len(fs)-1]
	require.Equal(t, "TeamRunCompleted", last.Event, names(fs))
	const want = 100*3.0/1e6 + (100*3.0+100*15.0)/1e6
	var run budgetRun
	ts.json(http.MethodGet, "/teams/crew2/runs/"+last.Data["run_id"].(string), "", "", http.StatusOK, &run)
	require.InDelta(t, want, run.Metrics.Cost, 1e-12, "the team run's cost includes its member's")

	fs, _ = ts.stream("/teams/crew2/runs", "", "application/json", `{"message":"again","stream":true}`)
	last = fs[len(fs)-1]
	require.Equal(t, "TeamRunError", last.Event, names(fs))
	require.Equal(t, "budget_exceeded", last.Data["error_type"])
	require.Contains(t, last.Data["content"], "budget team-pot exceeded: tokens 300 of 250 used")
	require.Len(t, script.Requests(), 2, "the refused team run made no model call")
}

// TestWorkflowBudgetRefusesTheNextStep: the first step spends the
// workflow's pot; the second step's agent is refused before its model call,
// and the workflow run's cost is its first step's.
func TestWorkflowBudgetRefusesTheNextStep(t *testing.T) {
	t.Parallel()
	script := fake.New(
		fake.Step{Content: "one", Usage: model.Usage{InputTokens: 100, OutputTokens: 100}},
		fake.Step{Content: "never asked"},
	)
	ts := startServer(t, withProvider("anthropic", script), withSpecs(groupBudgetSpecs))
	fs, _ := ts.stream("/workflows/pair/runs", "", "application/json", `{"message":"go","stream":true}`)
	last := fs[len(fs)-1]
	require.Equal(t, "WorkflowError", last.Event, names(fs))
	require.Contains(t, names(fs), "BudgetExceeded")
	require.Len(t, script.Requests(), 1, "the second step made no model call")
	var run budgetRun
	ts.json(http.MethodGet, "/workflows/pair/runs/"+last.Data["run_id"].(string), "", "", http.StatusOK, &run)
	require.InDelta(t, (100*3.0+100*15.0)/1e6, run.Metrics.Cost, 1e-12, "the workflow run's cost is its steps'")
}

// TestBudgetsListingForAUserBoundKey: admin sees every counter; alice's key
// sees only her own, and nothing of budgets that are not per user.
func TestBudgetsListingForAUserBoundKey(t *testing.T) {
	t.Parallel()
	script := fake.New(
		fake.Step{Content: "a", Usage: model.Usage{InputTokens: 1, OutputTokens: 1}},
		fake.Step{Content: "b", Usage: model.Usage{InputTokens: 2, OutputTokens: 2}},
		fake.Step{Content: "c", Usage: model.Usage{InputTokens: 3, OutputTokens: 3}},
	)
	ts := startServer(t, withProvider("anthropic", script), withSpecs(budgetSpecs), withKeys(keys))
	for _, key := range []string{aliceKey, bobKey} {
		fs, _ := ts.stream("/agents/spender/runs", key, "application/json", `{"message":"go","stream":true}`)
		require.Equal(t, "RunCompleted", fs[len(fs)-1].Event)
	}
	fs, _ := ts.stream("/agents/left/runs", aliceKey, "application/json", `{"message":"go","stream":true}`)
	require.Equal(t, "RunCompleted", fs[len(fs)-1].Event)

	type listed struct {
		Name  string `json:"name"`
		Usage []struct {
			Scope  string `json:"scope"`
			Tokens int    `json:"tokens"`
		} `json:"usage"`
	}
	scopes := func(key string) map[string][]string {
		var all []listed
		ts.json(http.MethodGet, "/budgets", key, "", http.StatusOK, &all)
		out := map[string][]string{}
		for _, b := range all {
			out[b.Name] = []string{}
			for _, u := range b.Usage {
				out[b.Name] = append(out[b.Name], u.Scope)
			}
		}
		return out
	}
	require.Equal(t, map[string][]string{"daily-user": {"user:alice", "user:bob"}, "pot": {""}, "per-run": {}}, scopes(adminKey))
	require.Equal(t, map[string][]string{"daily-user": {"user:alice"}, "pot": {}, "per-run": {}}, scopes(aliceKey))
	status, _, _ := ts.do(http.MethodGet, "/budgets", readerKey, "", "")
	require.Equal(t, http.StatusForbidden, status, "listing budgets needs sessions:read")
}
