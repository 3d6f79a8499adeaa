// Package summary folds a session's older turns into its running summary,
// in a background job after a run (never on the request's path): the job
// kind, its worker and the queue the session service enqueues on.
//
// The job is unique per session and fold point, so each threshold crossing
// queues one job; it is idempotent (a summary that already covers its point
// makes it a no-op), so a job retried after a crash, or rescued from a
// process that died, writes the summary once.
package summary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
)

// Args are a summary job's arguments: the session and the last run to fold.
type Args struct {
	SessionID string    `json:"session_id"`
	RunID     string    `json:"run_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Kind names the summary kind.
func (Args) Kind() string { return "session_summary" }

// Summary names the session and run for the queue pages.
func (a Args) Summary() map[string]string {
	return map[string]string{"session_id": a.SessionID, "run_id": a.RunID}
}

// Job is the summary of a session through one run. UniqueDone keeps a
// crossing's job from running twice once done; a failed attempt (the model
// failed) is retried with backoff.
var Job = jobs.Kind[Args]{UniqueDone: true, MaxAttempts: 5, Timeout: 5 * time.Minute}

// Store reads sessions and keeps their summaries (store.DB).
type Store interface {
	session.SummaryStore
	GetSession(ctx context.Context, id string, f session.Filter) (*session.Session, error)
}

// modeled is a runner that writes summaries (agents and teams).
type modeled interface {
	SummaryModel() (p model.Provider, modelID, vendor string)
}

// maxFold bounds the runs one job folds; a longer backlog is folded by the
// next crossing's job.
const maxFold = 500

// DefaultPrompt is what the summarizing model is told unless the spec's
// prompt replaces it.
const DefaultPrompt = `You maintain the running summary of a conversation between a user and an assistant. ` +
	`Fold the new turns into the previous summary: keep facts, names, numbers, decisions, preferences and open questions; ` +
	`drop small talk; write in the third person, at most a few paragraphs.`

// jsonInstruction asks for the AgentOS SessionSummary shape; plain text is
// accepted too.
const jsonInstruction = `Answer with JSON only: {"summary": "<the updated summary>", "topics": ["<short topic>", ...]}.`

// Worker writes summaries.
type Worker struct {
	Store   Store
	Targets session.Targets
	Log     *slog.Logger
	Now     func() time.Time
}

// Register makes the clients built on r run summary jobs with w.
func Register(r *jobs.Registry, w *Worker) {
	jobs.Register(r, Job, w.Work)
}

// Queue queues summary jobs on a jobs client; it is the session service's
// SummaryQueue.
type Queue struct{ Client *jobs.Client }

var _ session.SummaryQueue = Queue{}

// EnqueueSummary implements session.SummaryQueue.
func (q Queue) EnqueueSummary(ctx context.Context, sessionID string, through session.FoldPoint) error {
	// Off the run's path: the run's answer never waits for the insert.
	return jobs.EnqueueDeferred(ctx, q.Client, Job, Args{SessionID: sessionID, RunID: through.RunID, CreatedAt: through.CreatedAt.UTC()})
}

// Work folds the session's runs up to a.RunID into its summary, unless the
// summary already covers that run or the session, its agent or team, or
// its summary setting is gone (nothing to do: not an error to retry).
func (w *Worker) Work(ctx context.Context, a Args) error {
	log := w.log().With("session_id", a.SessionID, "through_run_id", a.RunID)
	through := session.FoldPoint{RunID: a.RunID, CreatedAt: a.CreatedAt}
	sess, err := w.Store.GetSession(ctx, a.SessionID, session.Filter{})
	if errors.Is(err, session.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("summary: reading session %s: %w", a.SessionID, err)
	}
	prev := sess.Summary
	if prev != nil && prev.Through.Covers(through) {
		log.Debug("session summary already covers the run")
		return nil
	}
	tg, err := w.Targets.Pin(session.KindOf(sess.Type), sess.ComponentID)
	if err != nil {
		log.Warn("session summary skipped: its agent or team is not available", "component", sess.ComponentID, "err", err)
		return nil
	}
	defer tg.Release()
	cfg := session.SummaryConfigOf(tg.Runner)
	m, ok := tg.Runner.(modeled)
	if cfg == nil || !ok {
		return nil // summary was turned off since
	}
	provider, modelID, vendor := m.SummaryModel()
	if provider == nil {
		return nil
	}
	var after session.FoldPoint
	if prev != nil {
		after = prev.Through
	}
	runs, err := w.Store.HistoryAfter(ctx, a.SessionID, after, maxFold)
	if err != nil {
		return fmt.Errorf("summary: reading the runs of session %s: %w", a.SessionID, err)
	}
	var fold []session.HistoryRun
	for _, r := range runs {
		if through.Covers(r.FoldPoint) {
			fold = append(fold, r)
		}
	}
	if len(fold) == 0 {
		return nil
	}
	start := w.now()
	log.Info(string(event.SessionSummaryStarted), "runs", len(fold), "model", modelID, "provider", vendor)
	req := &model.Request{Model: modelID, System: instructions(cfg.Prompt), Messages: []model.Message{{Role: model.RoleUser, Content: conversation(prev, fold)}}}
	// The summary counts against the runner's budgets and in the spend of
	// the run it folds through, when the store keeps spend.
	spend, _ := w.Store.(budget.Spend)
	resp, spendErr, err := budget.Background(ctx, budget.PolicyOf(tg.Runner), budget.Subject{RunID: a.RunID, SessionID: a.SessionID, UserID: sess.UserID, Runner: sess.ComponentID},
		spend, func(ctx context.Context) (*model.Response, error) { return provider.Generate(ctx, req, nil) })
	if exceeded := (*budget.ExceededError)(nil); errors.As(err, &exceeded) {
		// Retrying cannot help before the budget's window turns; the next
		// crossing tries again, and the history stays bounded meanwhile.
		log.Warn("session summary skipped: a budget is spent", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("summary: asking %s for the summary of session %s: %w", modelID, a.SessionID, err)
	}
	if spendErr != nil {
		log.Warn("session summary: counting its usage in the run's spend", "err", spendErr)
	}
	next := parse(resp.Content)
	if next.Summary == "" {
		return fmt.Errorf("summary: %s answered no summary for session %s", modelID, a.SessionID)
	}
	next.UpdatedAt, next.Through = w.now(), through
	if prev != nil {
		next.Metrics = prev.Metrics
	}
	next.Metrics.ModelRequests++
	next.Metrics.AddUsage(resp.Usage)
	next.Metrics.AddCost(resp)
	saved, err := w.Store.SaveSummary(ctx, a.SessionID, &next)
	if errors.Is(err, session.ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("summary: saving the summary of session %s: %w", a.SessionID, err)
	}
	log.Info(string(event.SessionSummaryCompleted), "saved", saved, "runs", len(fold), "duration", w.now().Sub(start),
		"input_tokens", resp.Usage.InputTokens, "output_tokens", resp.Usage.OutputTokens, "cost", resp.Cost)
	return nil
}

func (w *Worker) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

func (w *Worker) now() time.Time {
	if w.Now == nil {
		return time.Now().UTC()
	}
	return w.Now().UTC()
}

// instructions are the summarizing model's: the prompt, then the answer's
// shape.
func instructions(prompt string) string {
	if strings.TrimSpace(prompt) == "" {
		prompt = DefaultPrompt
	}
	return strings.TrimSpace(prompt) + "\n\n" + jsonInstruction
}

// conversation is the summarizing model's input: the previous summary and
// the turns to fold, as a transcript.
func conversation(prev *session.Summary, runs []session.HistoryRun) string {
	var b strings.Builder
	b.WriteString("Previous summary:\n")
	if prev != nil && strings.TrimSpace(prev.Summary) != "" {
		b.WriteString(strings.TrimSpace(prev.Summary))
		if len(prev.Topics) > 0 {
			b.WriteString("\nTopics: " + strings.Join(prev.Topics, ", "))
		}
	} else {
		b.WriteString("(none)")
	}
	b.WriteString("\n\nNew turns:\n")
	for _, r := range runs {
		for _, m := range r.Messages {
			switch {
			case len(m.ToolCalls) > 0:
				for _, c := range m.ToolCalls {
					fmt.Fprintf(&b, "assistant called %s(%s)\n", c.Name, c.Arguments)
				}
				if m.Content != "" {
					fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
				}
			case m.Role == model.RoleTool:
				fmt.Fprintf(&b, "tool %s: %s\n", m.Name, m.Content)
			default:
				fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
			}
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// parse reads the model's answer: JSON {"summary", "topics"} (in a code
// fence or not), or else the whole text as the summary.
func parse(content string) session.Summary {
	text := strings.TrimSpace(content)
	body := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(text, "```json"), "```"), "```"))
	var v struct {
		Summary string   `json:"summary"`
		Topics  []string `json:"topics"`
	}
	if strings.HasPrefix(body, "{") && json.Unmarshal([]byte(body), &v) == nil && strings.TrimSpace(v.Summary) != "" {
		return session.Summary{Summary: strings.TrimSpace(v.Summary), Topics: v.Topics}
	}
	return session.Summary{Summary: text}
}
