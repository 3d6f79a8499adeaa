package learning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// enqueueTimeout bounds queueing a distillation as a run finishes.
const enqueueTimeout = 5 * time.Second

// RunStarted implements session.Observer: completed top-level runs of
// agents whose learning distils are queued for distillation when they
// finish. Only the job's insertion happens as the run finishes; the model
// is asked in the background job.
func (l *Learner) RunStarted(r *session.Run, _ session.Link) session.RunObserver {
	if l.opts.Queue == nil || (r.Type != session.TypeAgent && r.Type != session.TypeTeam) || r.ParentRunID != "" {
		return nil
	}
	return &finish{l: l}
}

// RunInterrupted implements session.Observer: an interrupted run has no
// answer to learn from.
func (l *Learner) RunInterrupted(*session.Run) {}

// finish queues the distillation of one run when it completes.
type finish struct{ l *Learner }

func (f *finish) Event(event.Event)                             {}
func (f *finish) StoreSpan(string, time.Time, time.Time, error) {}

func (f *finish) RunFinished(r *session.Run, _ string) {
	if r.Status != event.StatusCompleted {
		return
	}
	j := JobOf(r)
	ls, _, _, _, err := f.l.runner(j.kind(), r.ComponentID)
	if err != nil || ls == nil || !ls.Distils() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), enqueueTimeout)
	defer cancel()
	if err := f.l.opts.Queue.EnqueueLearning(ctx, j); err != nil {
		f.l.log.Warn("learning: queueing the distillation of a run failed; the run is not learned from", "run_id", r.ID, "agent", r.ComponentID, "err", err)
	}
}

// JobOf returns the distillation job of run r, its parts bounded.
func JobOf(r *session.Run) Job {
	j := Job{Origin: Origin{RunID: r.ID, SessionID: r.SessionID, UserID: r.UserID, Agent: r.ComponentID, Team: r.Type == session.TypeTeam},
		Input: tool.Truncate(r.Input, maxTranscript), Answer: tool.Truncate(r.Content, maxTranscript)}
	budget := maxTranscript
	for _, c := range r.Tools {
		if budget <= 0 {
			break
		}
		args, _ := json.Marshal(c.Args)
		u := ToolUse{Name: c.Name, Args: tool.Truncate(string(args), 1024), Result: tool.Truncate(c.Result, 2048), Error: c.Error}
		budget -= len(u.Args) + len(u.Result)
		j.Tools = append(j.Tools, u)
	}
	return j
}

// Distil asks the agent's learning model for the insights of the run j
// and keeps each (saved or proposed). A malformed answer is logged and
// dropped, not retried: asking again would likely fail the same way. Model
// and storage errors are returned, so the job is retried.
func (l *Learner) Distil(ctx context.Context, j Job) error {
	ls, p, modelID, policy, err := l.runner(j.kind(), j.Agent)
	if err != nil {
		l.log.Warn("learning: the run's agent is not available; its run is not learned from", "run_id", j.RunID, "agent", j.Agent, "err", err)
		return nil
	}
	if ls == nil || !ls.Distils() || p == nil {
		return nil // learning was turned off since the run
	}
	prompt := ls.Prompt
	if strings.TrimSpace(prompt) == "" {
		prompt = DefaultPrompt
	}
	req := &model.Request{Model: modelID, System: prompt, Messages: []model.Message{{Role: model.RoleUser, Content: Transcript(j)}}}
	resp, spendErr, err := budget.Background(ctx, policy, budget.Subject{RunID: j.RunID, SessionID: j.SessionID, UserID: j.UserID, Runner: j.Agent},
		l.opts.Usage, func(ctx context.Context) (*model.Response, error) { return p.Generate(ctx, req, nil) })
	if exceeded := (*budget.ExceededError)(nil); errors.As(err, &exceeded) {
		// Retrying cannot help before the budget's window turns.
		l.log.Warn("learning: a budget is spent; the run is not learned from", "run_id", j.RunID, "agent", j.Agent, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("distilling run %s: %w", j.RunID, err)
	}
	if spendErr != nil {
		l.log.Warn("learning: counting the distillation in the run's spend", "run_id", j.RunID, "err", spendErr)
	}
	insights, err := ParseInsights(resp.Content)
	if err != nil {
		l.log.Warn("learning: the model's insights are not a JSON list; none kept", "run_id", j.RunID, "agent", j.Agent, "err", err, "answer", tool.Head(resp.Content, 200))
		return nil
	}
	for _, in := range insights {
		if strings.TrimSpace(in.Text) == "" {
			continue
		}
		if len(in.Text) > MaxInsightBytes {
			in.Text = tool.Head(in.Text, MaxInsightBytes/4)
		}
		if _, err := l.Keep(ctx, ls, j.Origin, in); err != nil {
			return err
		}
	}
	return nil
}

// Transcript is the run as the distilling model reads it.
func Transcript(j Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "User message:\n%s\n", j.Input)
	for _, t := range j.Tools {
		state := "result"
		if t.Error {
			state = "error"
		}
		fmt.Fprintf(&b, "\nTool call %s(%s) %s:\n%s\n", t.Name, t.Args, state, t.Result)
	}
	fmt.Fprintf(&b, "\nAgent's answer:\n%s\n", j.Answer)
	return b.String()
}

// ParseInsights reads a model's answer: a JSON list of {text, topic}
// objects or of strings, possibly inside a Markdown code fence. At most
// MaxInsights are returned.
func ParseInsights(s string) ([]Insight, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "```") {
		s = strings.TrimPrefix(s, "```json")
		s = strings.TrimPrefix(s, "```")
		s = strings.TrimSuffix(strings.TrimSpace(s), "```")
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("want a JSON list of insights: %w", err)
	}
	var out []Insight
	for _, r := range raw {
		var in Insight
		if err := json.Unmarshal(r, &in); err != nil {
			var text string
			if err := json.Unmarshal(r, &text); err != nil {
				return nil, fmt.Errorf("want each insight as {\"text\", \"topic\"} or a string, got %s", tool.Head(string(r), 80))
			}
			in.Text = text
		}
		out = append(out, in)
		if len(out) == MaxInsights {
			break
		}
	}
	return out, nil
}

// SaveTool implements engine.LearningTools: agent a's save_learning tool.
func (l *Learner) SaveTool(a *spec.Agent) tool.Tool {
	return &saveTool{l: l, spec: a.Learning, agent: a.Name}
}

// saveTool is save_learning: the model keeps one insight.
type saveTool struct {
	l     *Learner
	spec  *spec.Learning
	agent string
}

// SaveToolName is the name of the learning tool.
const SaveToolName = "save_learning"

func (t *saveTool) Def() model.ToolDef {
	return model.ToolDef{
		Name:        SaveToolName,
		Description: fmt.Sprintf("Save one reusable insight learned in this conversation (a fact about the domain, a tool or the users' needs that will help answer future questions) into the knowledge base %s, where later conversations find it. Save only what is worth knowing next time, one insight per call.", t.spec.Knowledge),
		Parameters: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"text":  map[string]any{"type": "string", "description": "The insight, one self-contained sentence or short paragraph."},
				"topic": map[string]any{"type": "string", "description": "A short topic for the insight (optional)."},
			},
			"required": []any{"text"},
		},
	}
}

func (t *saveTool) Call(ctx context.Context, args json.RawMessage) (string, error) {
	var in Insight
	if err := tool.Decode(args, &in); err != nil {
		return "", err
	}
	r, _ := tool.RunOf(ctx)
	o := Origin{RunID: r.RunID, SessionID: r.SessionID, UserID: r.UserID, Agent: t.agent}
	out, err := t.l.Keep(ctx, t.spec, o, in)
	if err != nil {
		return "", err
	}
	switch out {
	case Proposed:
		return "Proposed: a person will review the insight before it is saved.", nil
	case Merged:
		return "Saved: a near-identical learning was already known, so the two were merged.", nil
	}
	return "Saved.", nil
}

// Summary names the run, for the job queue's pages.
func (j Job) Summary() map[string]string {
	if j.Team {
		return map[string]string{"run_id": j.RunID, "team": j.Agent}
	}
	return map[string]string{"run_id": j.RunID, "agent": j.Agent}
}
