package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// thinkTool is reasoning.tool think: the model writes a reasoning step down.
// It has no side effects; the run records the thought as a reasoning step.
type thinkTool struct{}

var _ tool.Tool = thinkTool{}

var thinkDef = model.ToolDef{
	Name:        spec.ThinkTool,
	Description: "Think about the problem before acting or answering: write one reasoning step (what you know, what you need, what to do next). It changes nothing and returns no new information.",
	Parameters: map[string]any{
		"type": "object",
		"properties": map[string]any{
			"title":   map[string]any{"type": "string", "description": "A short title for the step."},
			"thought": map[string]any{"type": "string", "description": "The reasoning step."},
		},
		"required": []any{"thought"},
	},
}

func (thinkTool) Def() model.ToolDef { return thinkDef }

// thinkArgs are the think tool's arguments.
type thinkArgs struct {
	Title   string `json:"title"`
	Thought string `json:"thought"`
}

// thinkResult is what the model reads back: an acknowledgement, so it goes on
// to act rather than think again.
const thinkResult = "Thought recorded. Continue: act on it or answer."

func (thinkTool) Call(_ context.Context, args json.RawMessage) (string, error) {
	var a thinkArgs
	if err := json.Unmarshal(args, &a); err != nil || strings.TrimSpace(a.Thought) == "" {
		return "", fmt.Errorf("think needs a non-empty \"thought\" string: write the reasoning step in it")
	}
	return thinkResult, nil
}

// planPrompt asks a reasoning model for numbered steps, bounded by max.
func planPrompt(maxSteps int) string {
	return fmt.Sprintf("You plan how another assistant should answer the user's last message. "+
		"Think step by step and write at most %d numbered steps (\"1. ...\"), one per line, "+
		"each a concrete action or conclusion. Write nothing else: no answer, no preamble.", maxSteps)
}

var numbered = regexp.MustCompile(`(?i)^\s*(?:step\s*)?(\d+)\s*[.):-]\s*(.+)$`)

// parsePlan returns a planning answer's steps, at most maxSteps: its
// numbered lines, or its non-empty lines when it numbered none.
func parsePlan(text string, maxSteps int) []event.Thought {
	var lines, steps []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		lines = append(lines, l)
		if m := numbered.FindStringSubmatch(l); m != nil {
			steps = append(steps, strings.TrimSpace(m[2]))
		}
	}
	if len(steps) == 0 {
		steps = lines
	}
	steps = steps[:min(len(steps), maxSteps)]
	out := make([]event.Thought, len(steps))
	for i, s := range steps {
		out[i] = event.Thought{Title: "Step " + strconv.Itoa(i+1), Action: s, NextAction: "continue", Source: event.ReasoningPlan}
	}
	if n := len(out); n > 0 {
		out[n-1].NextAction = "final_answer"
	}
	return out
}

// planContext is what the answering model is told of the plan.
func planContext(steps []event.Thought) string {
	var b strings.Builder
	b.WriteString("Before answering, you reasoned through these steps; follow them:")
	for i, s := range steps {
		fmt.Fprintf(&b, "\n%d. %s", i+1, s.Action)
	}
	return b.String()
}

// plan runs reasoning.model's planning pass and returns its steps, emitting
// the reasoning events. The steps' usage and cost count for the run.
func (r *run) plan(ctx context.Context, msgs []model.Message) ([]event.Thought, error) {
	rs := r.a.cfg.Spec.Reasoning
	r.thoughtsStarted()
	if r.budgeted {
		if err := budget.Check(ctx); err != nil {
			return nil, err
		}
	}
	req := &model.Request{Model: r.a.cfg.ReasonerModel, System: planPrompt(rs.Steps()), Messages: msgs}
	start := r.a.cfg.Now()
	resp, err := r.a.cfg.Reasoner.Generate(ctx, req, nil)
	r.metrics.ModelRequests++
	if err != nil {
		return nil, fmt.Errorf("reasoning model: %w", err)
	}
	r.metrics.AddUsage(resp.Usage)
	r.metrics.AddCost(resp)
	// The request is reported as any other, so traces and metrics show
	// the planning model's tokens and cost.
	m := event.Metrics{Duration: r.a.cfg.Now().Sub(start), ModelRequests: 1}
	m.AddUsage(resp.Usage)
	m.AddCost(resp)
	done := r.event(event.ModelRequestCompleted)
	done.Model, done.Provider, done.Metrics = resp.Model, r.a.cfg.ReasonerVendor, &m
	if done.Model == "" {
		done.Model = r.a.cfg.ReasonerModel
	}
	done.Exchange = r.a.Exchange(req, resp)
	r.send(done)
	if r.budgeted {
		if err := budget.Record(ctx, budget.OfResponse(resp)); err != nil {
			return nil, err
		}
	}
	steps := parsePlan(resp.Content, rs.Steps())
	for _, s := range steps {
		r.thought(s)
	}
	r.thoughtsCompleted()
	return steps, nil
}

// thoughtsStarted emits ReasoningStarted once per run.
func (r *run) thoughtsStarted() {
	if r.reasoning {
		return
	}
	r.reasoning = true
	r.send(r.event(event.ReasoningStarted))
}

// thought records one reasoning step and emits it.
func (r *run) thought(t event.Thought) {
	r.thoughtsStarted()
	r.thoughts = append(r.thoughts, t)
	e := r.event(event.ReasoningStep)
	e.Reasoning, e.Content = &t, t.Text()
	r.send(e)
}

// thoughtsCompleted emits ReasoningCompleted with the steps so far, once.
func (r *run) thoughtsCompleted() {
	if !r.reasoning || r.reasoned {
		return
	}
	r.reasoned = true
	e := r.event(event.ReasoningCompleted)
	e.ReasoningSteps = append([]event.Thought(nil), r.thoughts...)
	r.send(e)
}

// thinkCalls records the thoughts of a turn's think tool calls.
func (r *run) thinkCalls(calls []model.ToolCall, results []model.Message) {
	if !r.a.think {
		return
	}
	for i, c := range calls {
		if c.Name != spec.ThinkTool || i >= len(results) || results[i].IsError {
			continue
		}
		var a thinkArgs
		if json.Unmarshal([]byte(c.Arguments), &a) != nil {
			continue
		}
		r.thought(event.Thought{Title: a.Title, Reasoning: a.Thought, Result: results[i].Content, NextAction: "continue", Source: event.ReasoningThink})
	}
}
