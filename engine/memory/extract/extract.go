// Package extract is automatic memory: after each completed top-level run
// with a user, of an agent or team whose memory extracts, a background job
// asks a model to add, update and delete the user's memories given the
// run's message and answer and the user's relevant memories. Only the
// job's insertion happens as the run finishes; the model is asked in the
// job, never on the request's path.
//
// The job is unique per run (its arguments carry the run id; UniqueDone
// keeps a finished one from running again). A model failure is retried; an
// answer that is not a JSON list of operations is logged and ignored. A
// job re-run after its process died mid-way skips an add whose text the
// user already has, so it adds nothing twice.
package extract

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
	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// Bounds.
const (
	// maxPart bounds the run's message and answer shown to the model.
	maxPart = 8 << 10
	// existingK is how many of the user's memories, the most relevant to
	// the run's message, the model sees to update or delete.
	existingK = 20
	// MaxOps bounds the operations applied from one answer.
	MaxOps = 20
	// enqueueTimeout bounds queueing the job as a run finishes.
	enqueueTimeout = 5 * time.Second
)

// DefaultPrompt is what the extracting model is told unless the spec's
// prompt replaces it.
const DefaultPrompt = `You maintain an assistant's memories about its user: short, durable facts (preferences, personal details, goals, circumstances) that will help in future conversations. ` +
	`Given the user's existing memories and one new exchange, add facts the user revealed, update memories the exchange changes, and delete memories it shows are wrong or that the user asked to forget. ` +
	`Skip small talk, one-off requests and anything about the assistant. Write each memory as one self-contained sentence in the third person ("The user ...").`

// opsInstruction asks for the operations' shape.
const opsInstruction = `Answer with a JSON list only, no prose: [{"op": "add", "memory": "...", "topics": ["..."]}, {"op": "update", "id": "<memory id>", "memory": "...", "topics": ["..."]}, {"op": "delete", "id": "<memory id>"}]. Answer [] when nothing changes.`

// Args are an extraction job's arguments: the run and what the model is
// shown of it (bounded).
type Args struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
	// Runner names the agent, or the team when Team is set.
	Runner string `json:"runner"`
	Team   bool   `json:"team,omitempty"`
	Input  string `json:"input"`
	Answer string `json:"answer"`
}

// Kind names the job kind.
func (Args) Kind() string { return "memory_extract" }

// Summary names the run for the queue pages.
func (a Args) Summary() map[string]string {
	return map[string]string{"run_id": a.RunID, "runner": a.Runner, "user_id": a.UserID}
}

// Job is the extraction of one run's memories.
var Job = jobs.Kind[Args]{UniqueDone: true, MaxAttempts: 5, Timeout: 5 * time.Minute}

// Memories are the user memories the job reads and writes (memory.Service).
type Memories interface {
	Recall(ctx context.Context, userID, agentID, query string, k int) ([]memory.Memory, error)
	Add(ctx context.Context, m *memory.Memory) (*memory.Memory, error)
	Update(ctx context.Context, userID, id string, p memory.Patch) (*memory.Memory, error)
	Delete(ctx context.Context, userID string, ids []string) ([]string, error)
}

var _ Memories = (*memory.Service)(nil)

// modeled is a runner whose memory extracts (agent.Agent, team.Team).
type modeled interface {
	MemoryModel() (model.Provider, string)
}

// Queue queues extraction jobs on a jobs client.
type Queue struct{ Client *jobs.Client }

// Enqueue queues the extraction of run a.RunID, once.
func (q Queue) Enqueue(ctx context.Context, a Args) error {
	// Off the run's path: the run's answer never waits for the insert.
	return jobs.EnqueueDeferred(ctx, q.Client, Job, a)
}

// Enqueuer queues extractions (Queue).
type Enqueuer interface {
	Enqueue(ctx context.Context, a Args) error
}

// Extractor observes runs, queueing the extraction of those that qualify,
// and works the extraction jobs.
type Extractor struct {
	Memories Memories
	Targets  session.Targets
	Queue    Enqueuer
	// Usage counts the extraction's tokens and cost in its run; nil counts
	// them nowhere.
	Usage budget.Spend
	Log   *slog.Logger
}

var (
	_ session.Observer    = (*Extractor)(nil)
	_ session.RunObserver = (*finish)(nil)
)

// Register makes the clients built on r run extraction jobs with x.
func Register(r *jobs.Registry, x *Extractor) {
	jobs.Register(r, Job, x.Work)
}

// RunStarted implements session.Observer: top-level agent and team runs
// with a user are watched until they finish.
func (x *Extractor) RunStarted(r *session.Run, _ session.Link) session.RunObserver {
	if x.Queue == nil || r.UserID == "" || r.ParentRunID != "" || (r.Type != session.TypeAgent && r.Type != session.TypeTeam) {
		return nil
	}
	return &finish{x: x}
}

// RunInterrupted implements session.Observer: an interrupted run has no
// answer to learn about its user from.
func (x *Extractor) RunInterrupted(*session.Run) {}

type finish struct{ x *Extractor }

func (f *finish) Event(event.Event)                             {}
func (f *finish) StoreSpan(string, time.Time, time.Time, error) {}

// RunFinished queues the extraction of a completed run whose runner's
// memory extracts.
func (f *finish) RunFinished(r *session.Run, _ string) {
	if r.Status != event.StatusCompleted {
		return
	}
	a := Args{RunID: r.ID, SessionID: r.SessionID, UserID: r.UserID, Runner: r.ComponentID, Team: r.Type == session.TypeTeam,
		Input: tool.Truncate(r.Input, maxPart), Answer: tool.Truncate(r.Content, maxPart)}
	tg, err := f.x.Targets.Pin(a.kind(), a.Runner)
	if err != nil {
		return
	}
	m := session.MemoryOf(tg.Runner)
	tg.Release()
	if m == nil || !m.Extracts() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), enqueueTimeout)
	defer cancel()
	if err := f.x.Queue.Enqueue(ctx, a); err != nil {
		f.x.log().Warn("memory: queueing the extraction of a run failed; its memories are not extracted", "run_id", r.ID, "runner", r.ComponentID, "err", err)
	}
}

func (a Args) kind() spec.Kind {
	if a.Team {
		return spec.KindTeam
	}
	return spec.KindAgent
}

// Op is one operation of the model's answer.
type Op struct {
	Op     string   `json:"op"`
	ID     string   `json:"id,omitempty"`
	Memory string   `json:"memory,omitempty"`
	Topics []string `json:"topics,omitempty"`
}

// Work extracts the memories of run a: nothing when the runner is gone or
// extracts no more (not an error to retry).
func (x *Extractor) Work(ctx context.Context, a Args) error {
	log := x.log().With("run_id", a.RunID, "runner", a.Runner)
	tg, err := x.Targets.Pin(a.kind(), a.Runner)
	if err != nil {
		log.Warn("memory extraction skipped: its agent or team is not available", "err", err)
		return nil
	}
	defer tg.Release()
	mem := session.MemoryOf(tg.Runner)
	md, ok := tg.Runner.(modeled)
	if mem == nil || !mem.Extracts() || !ok {
		return nil // memory was turned off since
	}
	provider, modelID := md.MemoryModel()
	if provider == nil {
		return nil
	}
	agentID := session.MemoryAgentID(mem, a.Runner)
	existing, err := x.Memories.Recall(ctx, a.UserID, agentID, a.Input, existingK)
	if err != nil {
		return fmt.Errorf("memory: recalling the memories of user %s: %w", a.UserID, err)
	}
	req := &model.Request{Model: modelID, System: instructions(mem.Prompt), Messages: []model.Message{{Role: model.RoleUser, Content: Transcript(existing, a)}}}
	resp, spendErr, err := budget.Background(ctx, budget.PolicyOf(tg.Runner), budget.Subject{RunID: a.RunID, SessionID: a.SessionID, UserID: a.UserID, Runner: a.Runner},
		x.Usage, func(ctx context.Context) (*model.Response, error) { return provider.Generate(ctx, req, nil) })
	if exceeded := (*budget.ExceededError)(nil); errors.As(err, &exceeded) {
		// Retrying cannot help before the budget's window turns.
		log.Warn("memory extraction skipped: a budget is spent", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("memory: asking %s for the memories of run %s: %w", modelID, a.RunID, err)
	}
	if spendErr != nil {
		log.Warn("memory extraction: counting its usage in the run's spend", "err", spendErr)
	}
	ops, err := ParseOps(resp.Content)
	if err != nil {
		log.Warn("memory extraction: the model's answer is not a JSON list of operations; ignored", "err", err, "answer", tool.Head(resp.Content, 200))
		return nil
	}
	added, updated, deleted := x.apply(ctx, log, a, mem, existing, ops)
	log.Info("memories extracted", "added", added, "updated", updated, "deleted", deleted, "model", modelID,
		"input_tokens", resp.Usage.InputTokens, "output_tokens", resp.Usage.OutputTokens)
	return nil
}

// apply applies ops as the run's user, each alone: an operation that fails
// (an unknown or foreign id, a memory out of bounds) is logged and skipped.
func (x *Extractor) apply(ctx context.Context, log *slog.Logger, a Args, mem *spec.Memory, existing []memory.Memory, ops []Op) (added, updated, deleted int) {
	have := map[string]bool{}
	for _, m := range existing {
		have[fold(m.Memory)] = true
	}
	sc := memory.Memory{UserID: a.UserID, AgentID: session.MemoryAgentID(mem, a.Runner), Input: tool.Head(a.Input, 2000), RunID: a.RunID, SessionID: a.SessionID}
	if a.Team {
		sc.TeamID = a.Runner
	}
	for _, op := range ops {
		var err error
		switch strings.ToLower(strings.TrimSpace(op.Op)) {
		case "add":
			if have[fold(op.Memory)] {
				continue // known already, or added by an earlier attempt of this job
			}
			m := sc
			m.Memory, m.Topics = op.Memory, op.Topics
			if _, err = x.Memories.Add(ctx, &m); err == nil {
				have[fold(op.Memory)] = true
				added++
			}
		case "update":
			p := memory.Patch{Memory: &op.Memory}
			if op.Topics != nil {
				p.Topics = &op.Topics
			}
			// Constrained to the run's user: another user's id is unknown.
			if _, err = x.Memories.Update(ctx, a.UserID, op.ID, p); err == nil {
				updated++
			}
		case "delete":
			var gone []string
			if gone, err = x.Memories.Delete(ctx, a.UserID, []string{op.ID}); err == nil {
				deleted += len(gone)
			}
		default:
			err = fmt.Errorf("unknown op %q: want add, update or delete", op.Op)
		}
		if err != nil {
			log.Warn("memory extraction: an operation was skipped", "op", op.Op, "id", op.ID, "err", err)
		}
	}
	return added, updated, deleted
}

func fold(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

func (x *Extractor) log() *slog.Logger {
	if x.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return x.Log
}

// instructions are the extracting model's: the prompt, then the answer's
// shape.
func instructions(prompt string) string {
	if strings.TrimSpace(prompt) == "" {
		prompt = DefaultPrompt
	}
	return strings.TrimSpace(prompt) + "\n\n" + opsInstruction
}

// Transcript is what the extracting model reads: the user's relevant
// memories with their ids, then the exchange.
func Transcript(existing []memory.Memory, a Args) string {
	var b strings.Builder
	b.WriteString("Existing memories:\n")
	if len(existing) == 0 {
		b.WriteString("(none)\n")
	}
	for _, m := range existing {
		fmt.Fprintf(&b, "- [%s] %s", m.ID, m.Memory)
		if len(m.Topics) > 0 {
			fmt.Fprintf(&b, " (topics: %s)", strings.Join(m.Topics, ", "))
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\nUser message:\n%s\n\nAssistant's answer:\n%s", a.Input, a.Answer)
	return b.String()
}

// ParseOps reads a model's answer: a JSON list of operations, possibly in
// a Markdown code fence. At most MaxOps are returned.
func ParseOps(s string) ([]Op, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "```") {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "```json"), "```")
		s = strings.TrimSuffix(strings.TrimSpace(s), "```")
	}
	var ops []Op
	if err := json.Unmarshal([]byte(s), &ops); err != nil {
		return nil, fmt.Errorf("want a JSON list of operations: %w", err)
	}
	return ops[:min(len(ops), MaxOps)], nil
}
