package agent_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// gatedAgent has refund (approval required) and lookup (no control point),
// counting their calls.
func gatedAgent(t *testing.T, p model.Provider, refunds, lookups *atomic.Int32) *agent.Agent {
	t.Helper()
	set := spec.NewSet([]*spec.File{spec.ParseFile("t.yaml", []byte(`kind: Tool
name: refund
type: http
url: https://x.example.com/r
approval: {reason: 'refund {{ args.n }}'}
`), func(string) (string, bool) { return "", false })})
	require.Empty(t, set.Diagnostics().Errors())
	s := &spec.Agent{Meta: spec.Meta{Kind: spec.KindAgent, Name: "tester"}, Model: "fake/model"}
	s.Limits = spec.Limits{MaxToolCalls: 10, Timeout: spec.Duration(10 * time.Second), ToolTimeout: spec.Duration(2 * time.Second), MaxToolResult: 1000, MaxModelTurns: 10}
	count := func(name string, n *atomic.Int32) tool.Tool {
		return funcTool{name: name, fn: func(_ context.Context, args json.RawMessage) (string, error) {
			n.Add(1)
			return name + " ran with " + string(args), nil
		}}
	}
	a, err := agent.New(agent.Config{Spec: s, Provider: p, Model: "model", Vendor: "fake",
		Tools: []tool.Tool{count("refund", refunds), count("lookup", lookups)},
		Gates: map[string]*approval.Gate{"refund": approval.NewGate(set.Tool("refund"))}})
	require.NoError(t, err)
	return a
}

// TestPauseHoldsTheTurn: a turn with a gated call and a free one runs
// neither before the decision; the held state continues the run, and the
// decision decides what the model reads.
func TestPauseHoldsTheTurn(t *testing.T) {
	t.Parallel()
	turn := []model.ToolCall{{ID: "c1", Name: "refund", Arguments: `{"n":7}`}, {ID: "c2", Name: "lookup", Arguments: `{"q":"x"}`}}
	for _, tc := range []struct {
		name    string
		confirm bool
		args    map[string]any
		refund  string // what the model reads for c1
		refunds int32
	}{
		{name: "approved", confirm: true, refund: `refund ran with {"n":7}`, refunds: 1},
		{name: "approved with edited args", confirm: true, args: map[string]any{"n": 3.0}, refund: `refund ran with {"n":3}`, refunds: 1},
		{name: "rejected", confirm: false, refund: "The tool call was rejected by the approver; it did not run. Their comment: no", refunds: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var refunds, lookups atomic.Int32
			p := fake.New(fake.Step{ToolCalls: turn, Usage: model.Usage{InputTokens: 5, OutputTokens: 2}}, fake.Step{Content: "all done"})
			a := gatedAgent(t, p, &refunds, &lookups)
			events, res := collect(t, t.Context(), a, agent.Input{Message: "go", RunID: "r1", UserID: "u"})
			require.Equal(t, event.StatusPaused, res.Status)
			require.Equal(t, []event.Type{event.RunStarted, event.ModelRequestCompleted, event.RunPaused}, types(events))
			paused := events[len(events)-1].Paused
			require.Len(t, paused, 1, "only the gated call waits on a decision")
			require.Equal(t, "c1", paused[0].ToolCallID)
			require.Equal(t, "refund 7", paused[0].Reason)
			require.NotEmpty(t, paused[0].ApprovalID)
			require.Zero(t, refunds.Load()+lookups.Load(), "the whole turn is held")
			require.Len(t, res.Pending, 1)
			require.Equal(t, []string{spec.DefaultApproverScope}, res.Pending[0].Approvers.Scopes)
			held := res.Held
			require.Len(t, held.Messages, 2, "the user's message and the assistant's held calls")
			require.Equal(t, 7, held.Metrics.TotalTokens)

			// The stored state survives JSON, as the database keeps it.
			b, err := json.Marshal(held)
			require.NoError(t, err)
			var rs agent.Resume
			require.NoError(t, json.Unmarshal(b, &rs))
			d := paused[0]
			d.Confirmed, d.ConfirmationNote, d.ToolArgs = &tc.confirm, "no", tc.args
			if tc.args == nil {
				d.ToolArgs = nil
			}
			rs.Decided = []event.ToolExecution{d}
			var cont []event.Event
			res = a.Execute(t.Context(), agent.Input{Message: "go", RunID: "r1", Resume: &rs}, func(e event.Event) { cont = append(cont, e) })
			require.Equal(t, event.StatusCompleted, res.Status, res.Err)
			require.Equal(t, event.RunContinued, cont[0].Type)
			require.True(t, res.Continued)
			require.Equal(t, "all done", res.Content)
			require.Equal(t, tc.refunds, refunds.Load())
			require.Equal(t, int32(1), lookups.Load(), "the free call runs once, after the decision")
			reqs := p.Requests()
			last := reqs[len(reqs)-1].Messages
			require.Equal(t, tc.refund, last[2].Content)
			require.Equal(t, `lookup ran with {"q":"x"}`, last[3].Content)
			require.Len(t, res.Messages, 5, "user, held calls, two results, answer")
			require.Len(t, res.Tools, 2)
			require.Equal(t, 2, res.Metrics.ModelRequests)
		})
	}
}
