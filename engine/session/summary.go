package session

import (
	"context"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
)

// Summary is a session's running summary (AgentOS SessionSummary): the
// session's older turns folded by a model, and the last run folded into it.
type Summary struct {
	Summary   string    `json:"summary"`
	Topics    []string  `json:"topics,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// Through is the last run folded into the summary; runs after it are
	// the session's unfolded history. Zero for a summary written through
	// the API before any run was folded.
	Through FoldPoint `json:"through,omitzero"`
	// Metrics add up the model calls that wrote the session's summaries
	// (tokens, cost): summaries cost what the runs' model calls cost.
	Metrics event.Metrics `json:"metrics,omitzero"`
}

// FoldPoint names a run by its creation time and id, the order of a
// session's history: the runs after it are those created later, or at the
// same time with a greater id.
type FoldPoint struct {
	RunID     string    `json:"run_id,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// IsZero reports whether p names no run (nothing folded).
func (p FoldPoint) IsZero() bool { return p.RunID == "" }

// Key returns p as text whose order is the order of the runs (fixed-width
// UTC time with microseconds, then the id); "" for the zero point.
func (p FoldPoint) Key() string {
	if p.IsZero() {
		return ""
	}
	return p.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z") + " " + p.RunID
}

// Covers reports whether p is q or a later run.
func (p FoldPoint) Covers(q FoldPoint) bool { return p.Key() >= q.Key() }

// HistoryRun is one completed top-level run of a session's history.
type HistoryRun struct {
	FoldPoint
	Messages []model.Message
}

// SummaryStore keeps session summaries (store.DB). Its methods are called
// concurrently.
type SummaryStore interface {
	// SessionSummary returns the summary of session id, nil when it has
	// none, or an error wrapping ErrNotFound for an unknown session.
	SessionSummary(ctx context.Context, id string) (*Summary, error)
	// HistoryAfter returns the last n completed top-level runs of the
	// session created after p (all of them when p is zero), oldest first.
	HistoryAfter(ctx context.Context, sessionID string, p FoldPoint, n int) ([]HistoryRun, error)
	// UnfoldedSize returns how many completed top-level runs of the
	// session come after p and their estimated tokens (EstimateTokens of
	// each run's messages, stored when the run finished), without reading
	// the messages.
	UnfoldedSize(ctx context.Context, sessionID string, p FoldPoint) (runs, tokens int, err error)
	// SaveSummary stores s as the summary of session id unless the stored
	// summary already covers s.Through; saved is false then.
	SaveSummary(ctx context.Context, id string, s *Summary) (saved bool, err error)
}

// SummaryConfig is a runner's summary configuration (agents and teams with
// summary on).
type SummaryConfig struct {
	// Model is the model reference that writes the summary.
	Model string
	// Threshold is the estimated tokens the unfolded runs may take before
	// the older ones are folded.
	Threshold int
	// Keep is how many of the newest runs stay verbatim.
	Keep   int
	Prompt string
}

// SummaryOf returns the summary configuration of an agent or team spec
// whose model (or leader's) is modelRef; nil when summaries are off.
func SummaryOf(s *spec.Summary, modelRef string, historyTokens int) *SummaryConfig {
	if !s.On() {
		return nil
	}
	m := s.Model
	if m == "" {
		m = modelRef
	}
	return &SummaryConfig{Model: m, Threshold: s.Threshold(historyTokens), Keep: s.Keep(), Prompt: s.Prompt}
}

// summarized is a runner that may have summary on (agents and teams).
type summarized interface {
	SummarySpec() (s *spec.Summary, modelRef string)
}

// SummaryConfigOf returns the summary configuration of runner, nil when it
// has summaries off.
func SummaryConfigOf(runner any) *SummaryConfig {
	sr, ok := runner.(summarized)
	if !ok {
		return nil
	}
	s, m := sr.SummarySpec()
	tokens := 0
	if b, ok := runner.(historyBudgeter); ok {
		tokens = b.HistoryTokens()
	}
	return SummaryOf(s, m, tokens)
}

// SummaryQueue queues a session's summary job (the jobs client): unique per
// session and fold point, so each threshold crossing queues one job.
type SummaryQueue interface {
	EnqueueSummary(ctx context.Context, sessionID string, through FoldPoint) error
}

// FoldThrough returns the run through which runs (the session's unfolded
// runs, oldest first, the turn's own run last) should be folded: the last
// of all but the keep newest, once their estimated tokens exceed the
// threshold. ok is false when nothing needs folding.
func FoldThrough(runs []HistoryRun, c *SummaryConfig) (FoldPoint, bool) {
	total := 0
	for _, r := range runs {
		total += EstimateTokens(r.Messages)
	}
	return foldThrough(runs, len(runs), total, c)
}

// foldThrough is FoldThrough of count unfolded runs taking total estimated
// tokens, of which recent are the newest (oldest first, the turn's own run
// last): the turn reads only those, and the size of the rest.
func foldThrough(recent []HistoryRun, count, total int, c *SummaryConfig) (FoldPoint, bool) {
	if count <= c.Keep || len(recent) <= c.Keep || total <= c.Threshold {
		return FoldPoint{}, false
	}
	return recent[len(recent)-1-c.Keep].FoldPoint, true
}

// SummaryPrompt is the section of the instructions that carries a session's
// summary, delimited so the model tells it from the instructions.
func SummaryPrompt(s *Summary) string {
	if s == nil || strings.TrimSpace(s.Summary) == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString("<session_summary>\nA summary of this session's earlier turns (the turns after it follow as messages):\n")
	b.WriteString(strings.TrimSpace(s.Summary))
	if len(s.Topics) > 0 {
		b.WriteString("\nTopics: ")
		b.WriteString(strings.Join(s.Topics, ", "))
	}
	b.WriteString("\n</session_summary>")
	return b.String()
}

// beginSummarized loads the context of a turn whose runner has summary on:
// the session's summary and the runs after it (bounded by history and
// history_tokens like any history). It reports false, loading nothing, when
// summaries are off or the store keeps none.
func (t *Turn) beginSummarized(ctx context.Context) bool {
	cfg := SummaryConfigOf(t.runner)
	ss, ok := t.s.opts.Store.(SummaryStore)
	n := t.runner.HistoryRuns()
	if cfg == nil || !ok || n <= 0 {
		return false
	}
	t.summaryCfg = cfg
	if t.p.SessionID == "" {
		return true // a new session: nothing to read
	}
	id := t.session.ID
	sum, err := ss.SessionSummary(ctx, id)
	if err != nil {
		t.s.log.Warn("loading session summary; answering without it", "session_id", id, "err", err)
	}
	var after FoldPoint
	if sum != nil {
		t.summary, after = sum, sum.Through
	}
	// The history's n newest runs (at least keep_runs of them, for the
	// fold point) are read whole; of the older unfolded runs only their
	// number and stored token estimates, which decide after the run
	// whether to fold.
	runs, err := ss.HistoryAfter(ctx, id, after, max(n, cfg.Keep))
	if err != nil {
		t.s.log.Warn("loading session history; answering without it", "session_id", id, "err", err)
	}
	if t.unfoldedRuns, t.unfoldedTokens, err = ss.UnfoldedSize(ctx, id, after); err != nil {
		// Without the size nothing folds this turn; the next one retries.
		t.s.log.Warn("sizing the session's unfolded history", "session_id", id, "err", err)
		t.unfoldedRuns, t.unfoldedTokens = 0, 0
	}
	t.unfolded = runs
	recent := runs[max(0, len(runs)-n):]
	msgs := make([][]model.Message, len(recent))
	for i, r := range recent {
		msgs[i] = r.Messages
	}
	budget := 0
	if b, ok := t.runner.(historyBudgeter); ok {
		budget = b.HistoryTokens()
	}
	t.history = FitHistory(msgs, budget)
	return true
}

// foldAfter queues the session's summary job when run r, completed, takes
// the unfolded runs over the threshold. It costs an addition to the size
// read at the start and, on a crossing, queueing the job (the job client
// inserts it off the run's path); the model call is the job's.
func (t *Turn) foldAfter(ctx context.Context, r *Run) {
	q := t.s.opts.Summaries
	if t.summaryCfg == nil || q == nil || r.Status != event.StatusCompleted || r.ParentRunID != "" {
		return
	}
	runs := append(t.unfolded, HistoryRun{FoldPoint: FoldPoint{RunID: r.ID, CreatedAt: r.CreatedAt}, Messages: r.Messages})
	through, ok := foldThrough(runs, t.unfoldedRuns+1, t.unfoldedTokens+EstimateTokens(r.Messages), t.summaryCfg)
	if !ok {
		return
	}
	if err := q.EnqueueSummary(ctx, t.session.ID, through); err != nil {
		// The next run crosses again and queues it then.
		t.s.log.Warn("queueing the session's summary job", "session_id", t.session.ID, "err", err)
	}
}
