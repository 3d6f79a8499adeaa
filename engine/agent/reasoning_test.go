package agent_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

func reasoningAgent(t *testing.T, p, reasoner model.Provider, r *spec.Reasoning) *agent.Agent {
	t.Helper()
	s := &spec.Agent{Meta: spec.Meta{Kind: spec.KindAgent, Name: "tester"}, Model: "fake/model", Instructions: "Be brief.", Reasoning: r}
	s.Limits = spec.Limits{MaxToolCalls: 10, Timeout: spec.Duration(10 * time.Second), ToolTimeout: spec.Duration(2 * time.Second), MaxToolResult: 1000, MaxModelTurns: 10}
	a, err := agent.New(agent.Config{Spec: s, Provider: p, Model: "model", Vendor: "fake", Reasoner: reasoner, ReasonerModel: "planner-1"})
	require.NoError(t, err)
	return a
}

func TestPlanningPassGivesStepsToTheAnsweringModel(t *testing.T) {
	tests := []struct {
		name     string
		plan     string
		maxSteps int
		want     []string
	}{
		{"numbered steps", "1. Read the question.\n2) Recall the capital.\nStep 3: Answer in one word.", 0, []string{"Read the question.", "Recall the capital.", "Answer in one word."}},
		{"bounded by max_steps", "1. a\n2. b\n3. c\n4. d", 2, []string{"a", "b"}},
		{"unnumbered lines", "Read it\n\nAnswer it", 0, []string{"Read it", "Answer it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			planner := fake.New(fake.Step{Content: tt.plan, Usage: model.Usage{InputTokens: 7, OutputTokens: 11}})
			answerer := fake.New(fake.Step{Content: "Paris", Usage: model.Usage{InputTokens: 3, OutputTokens: 1}})
			a := reasoningAgent(t, answerer, planner, &spec.Reasoning{Model: "fake/planner", MaxSteps: tt.maxSteps})
			events, res := collect(t, t.Context(), a, agent.Input{Message: "Capital of France?", RunID: "r1"})
			require.Equal(t, event.StatusCompleted, res.Status)

			preq := planner.Requests()
			require.Len(t, preq, 1)
			require.Equal(t, "planner-1", preq[0].Model)
			require.Contains(t, preq[0].System, "numbered steps")
			require.Equal(t, []model.Message{{Role: model.RoleUser, Content: "Capital of France?"}}, preq[0].Messages)

			areq := answerer.Requests()
			require.Len(t, areq, 1)
			want := "Be brief.\n\nBefore answering, you reasoned through these steps; follow them:"
			for i, s := range tt.want {
				want += "\n" + string(rune('1'+i)) + ". " + s
			}
			require.Equal(t, want, areq[0].System)

			var steps []string
			for _, s := range res.ReasoningSteps {
				steps = append(steps, s.Action)
				require.Equal(t, event.ReasoningPlan, s.Source)
			}
			require.Equal(t, tt.want, steps)
			require.Equal(t, "final_answer", res.ReasoningSteps[len(steps)-1].NextAction)

			wantTypes := []event.Type{event.RunStarted, event.ReasoningStarted, event.ModelRequestCompleted}
			for range tt.want {
				wantTypes = append(wantTypes, event.ReasoningStep)
			}
			wantTypes = append(wantTypes, event.ReasoningCompleted, event.RunContent, event.ModelRequestCompleted, event.RunCompleted)
			require.Equal(t, wantTypes, types(events))
			require.Equal(t, "Step 1: "+tt.want[0], events[3].Content)
			require.Equal(t, "planner-1", events[2].Model)
			require.Equal(t, 18, events[2].Metrics.TotalTokens)
			require.Equal(t, res.ReasoningSteps, events[len(events)-1].ReasoningSteps)
			// The plan's tokens count for the run.
			require.Equal(t, 2, res.Metrics.ModelRequests)
			require.Equal(t, 10, res.Metrics.InputTokens)
		})
	}
}

func TestPlanningPassFailureEndsTheRun(t *testing.T) {
	planner := fake.New(fake.Step{Err: &model.Error{Kind: model.ErrAuth, Provider: "fake", Message: "bad key"}})
	answerer := fake.New()
	a := reasoningAgent(t, answerer, planner, &spec.Reasoning{Model: "fake/planner"})
	events, res := collect(t, t.Context(), a, agent.Input{Message: "hi"})
	require.Equal(t, event.StatusError, res.Status)
	require.Contains(t, res.Err.Error(), "reasoning model")
	require.Equal(t, []event.Type{event.RunStarted, event.ReasoningStarted, event.RunError}, types(events))
	require.Empty(t, answerer.Requests())
}

func TestThinkTool(t *testing.T) {
	p := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{{ID: "c1", Name: "think", Arguments: `{"title":"Plan","thought":"The user wants a greeting."}`}}},
		fake.Step{Content: "Hello!"},
	)
	a := reasoningAgent(t, p, nil, &spec.Reasoning{Tool: "think"})
	events, res := collect(t, t.Context(), a, agent.Input{Message: "hi"})
	require.Equal(t, event.StatusCompleted, res.Status)

	reqs := p.Requests()
	require.Len(t, reqs, 2)
	require.Len(t, reqs[0].Tools, 1)
	require.Equal(t, "think", reqs[0].Tools[0].Name)
	// What the model reads back after thinking.
	last := reqs[1].Messages[len(reqs[1].Messages)-1]
	require.Equal(t, model.Message{Role: model.RoleTool, ToolCallID: "c1", Name: "think", Content: "Thought recorded. Continue: act on it or answer."}, last)

	require.Equal(t, []event.Thought{{Title: "Plan", Reasoning: "The user wants a greeting.", Result: "Thought recorded. Continue: act on it or answer.", NextAction: "continue", Source: event.ReasoningThink}}, res.ReasoningSteps)
	require.Equal(t, []event.Type{
		event.RunStarted, event.ModelRequestCompleted, event.ToolCallStarted, event.ToolCallCompleted,
		event.ReasoningStarted, event.ReasoningStep, event.RunContent, event.ModelRequestCompleted,
		event.ReasoningCompleted, event.RunCompleted,
	}, types(events))
}

func TestNativeReasoningIsCapturedAndSentBack(t *testing.T) {
	p := fake.New(
		fake.Step{Reasoning: "I need the time.", ToolCalls: []model.ToolCall{{ID: "c1", Name: "clock", Arguments: `{}`}}},
		fake.Step{Reasoning: "It is noon.", Content: "Noon."},
	)
	s := &spec.Agent{Meta: spec.Meta{Kind: spec.KindAgent, Name: "tester"}, Model: "fake/model", Reasoning: &spec.Reasoning{Native: true, BudgetTokens: 3000}}
	s.Limits = spec.Limits{MaxToolCalls: 10, Timeout: spec.Duration(10 * time.Second), ToolTimeout: spec.Duration(2 * time.Second), MaxToolResult: 1000, MaxModelTurns: 10}
	a, err := agent.New(agent.Config{Spec: s, Provider: p, Model: "model", Vendor: "fake",
		Tools: []tool.Tool{funcTool{name: "clock", fn: func(context.Context, json.RawMessage) (string, error) { return "12:00", nil }}}})
	require.NoError(t, err)
	var reasoningDeltas int
	events, res := collect(t, t.Context(), a, agent.Input{Message: "time?", Stream: true})
	require.Equal(t, event.StatusCompleted, res.Status)
	for _, e := range events {
		if e.Type == event.RunContent {
			require.NotEmpty(t, e.Content, "reasoning deltas are not answer content")
			reasoningDeltas++
		}
	}
	require.Equal(t, 1, reasoningDeltas)

	reqs := p.Requests()
	require.Equal(t, 3000, reqs[0].ReasoningBudget)
	// The first turn's reasoning goes back with its tool call.
	require.Equal(t, "I need the time.", reqs[1].Messages[1].Reasoning)
	require.Equal(t, []string{"I need the time.", "It is noon."}, []string{res.ReasoningSteps[0].Reasoning, res.ReasoningSteps[1].Reasoning})
	require.Equal(t, event.ReasoningNative, res.ReasoningSteps[0].Source)
	require.Equal(t, event.ReasoningCompleted, events[len(events)-2].Type)
}
