// Package learning is the learning loop: agents with `learning` turn their
// runs into reusable insights saved into a knowledge base, which later runs
// of any agent listing that base find with knowledge_search.
//
// Insights come from a background job after each completed run (modes
// always and propose: a model distils the run into a JSON list) or from the
// agent's own save_learning tool (modes agentic and propose). In mode
// propose each insight waits in the approvals inbox (TargetKind learning)
// and is saved only once a person approves it. Every saved learning is a
// text document whose metadata links it to its run (source learning,
// run_id, session_id, user_id, agent, created_at); a near-duplicate of an
// existing learning is merged into it instead of being added (see
// Learner.Save). Erase removes a user's learnings.
package learning

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// Metadata keys and values of a learning document.
const (
	// Source is the metadata "source" of every learning document.
	Source = "learning"
	// MetaRunIDs lists the runs a merged learning came from, newest last
	// (at most maxRunIDs); MetaUserIDs the users; MetaCount how many times
	// it was learned.
	MetaRunIDs  = "run_ids"
	MetaUserIDs = "user_ids"
	MetaCount   = "count"
)

// Bounds.
const (
	// DefaultThreshold is the cosine similarity (with the knowledge base's
	// embedder) at or above which a new insight is a near-duplicate of an
	// existing learning and is merged into it.
	DefaultThreshold = 0.9
	// MaxInsights bounds the insights kept from one run's distillation.
	MaxInsights = 10
	// MaxInsightBytes bounds one insight's text.
	MaxInsightBytes = 2000
	maxRunIDs       = 20
	// maxTranscript bounds each part (input, answer, tool calls) of the run
	// shown to the distilling model.
	maxTranscript = 8 << 10
	// ingestWait bounds how long a save waits for its document to be
	// indexed, so that the next save's duplicate search sees it.
	ingestWait = 30 * time.Second
)

// DefaultPrompt asks a model to distil a run into insights.
const DefaultPrompt = `You extract reusable insights from one conversation turn of an AI agent: facts about the domain, tools or users' needs that would help answer future questions better. Skip anything specific to this one request, greetings, and what any model already knows. Answer with a JSON list only, no prose: [{"text": "one self-contained insight", "topic": "a short topic"}]. Answer [] when there is nothing worth keeping.`

// Insight is one reusable lesson.
type Insight struct {
	Text  string `json:"text"`
	Topic string `json:"topic,omitempty"`
}

// Origin is the run an insight came from.
type Origin struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id,omitempty"`
	// Agent names the agent, or the team when Team is set, that ran it.
	Agent string `json:"agent"`
	Team  bool   `json:"team,omitempty"`
}

// kind is the spec kind of the runner that ran o.
func (o Origin) kind() spec.Kind {
	if o.Team {
		return spec.KindTeam
	}
	return spec.KindAgent
}

// Job is the distillation of one completed run: the job engine's
// arguments, so it carries what the model is shown (bounded).
type Job struct {
	Origin
	Input  string    `json:"input"`
	Answer string    `json:"answer"`
	Tools  []ToolUse `json:"tools,omitempty"`
}

// ToolUse is one tool call of the run, as the distilling model sees it.
type ToolUse struct {
	Name   string `json:"name"`
	Args   string `json:"args,omitempty"`
	Result string `json:"result,omitempty"`
	Error  bool   `json:"error,omitempty"`
}

// Knowledge is where learnings are kept (kb.Service).
type Knowledge interface {
	Submit(ctx context.Context, u kb.Upload) (*knowledge.Document, bool, error)
	Search(ctx context.Context, knowledgeIDs []string, query, mode string, topK int, filters knowledge.Filters) ([]knowledge.Hit, error)
	Get(ctx context.Context, id string) (*knowledge.Document, error)
	Patch(ctx context.Context, id string, name, description *string, metadata map[string]any) (*knowledge.Document, error)
	List(ctx context.Context, q knowledge.DocumentQuery) ([]knowledge.Document, int, error)
	Delete(ctx context.Context, id string) error
	Bases() []*spec.Knowledge
}

var _ Knowledge = (*kb.Service)(nil)

// Proposals keeps proposed learnings in the approvals inbox (store.DB).
type Proposals interface {
	// ProposeApproval adds a pending record; adding one whose id exists is
	// a no-op.
	ProposeApproval(ctx context.Context, r approval.Record) error
}

// Queue queues the distillation of a run (jobs.LearningQueue): once per
// run, retried until it succeeds.
type Queue interface {
	EnqueueLearning(ctx context.Context, j Job) error
}

// learner is what a pinned agent or team with learning offers
// (agent.Agent, team.Team).
type learner interface {
	Learning() *spec.Learning
	LearningModel() (model.Provider, string)
}

// Options configure a Learner.
type Options struct {
	Knowledge Knowledge
	// Proposals keeps proposals (mode propose); nil refuses that mode's
	// insights with an error saying so.
	Proposals Proposals
	// Agents resolves the agent a run named (engine.Engine).
	Agents session.Targets
	// Queue queues distillations; nil distils nothing after runs.
	Queue Queue
	// Usage, when set, adds a distillation's tokens and cost to the spend
	// of the run it distilled (store.DB).
	Usage budget.Spend
	// Threshold is the near-duplicate cosine similarity (DefaultThreshold
	// when 0).
	Threshold float64
	Logger    *slog.Logger
	Now       func() time.Time
}

// Learner saves, proposes and erases learnings, distils runs, and observes
// the run service to queue distillations. Safe for concurrent use.
type Learner struct {
	opts Options
	log  *slog.Logger
	// mu serialises saves, so that two near-duplicate insights arriving
	// together are never both added: each save's duplicate search sees the
	// previous save's document indexed. (One process; replicas sharing a
	// knowledge base may, rarely, each add one copy.)
	mu sync.Mutex
}

var (
	_ session.Observer           = (*Learner)(nil)
	_ session.RunObserver        = (*finish)(nil)
	_ tool.Tool                  = (*saveTool)(nil)
	_ interface{ Kind() string } = Job{}
)

// New returns a Learner.
func New(o Options) *Learner {
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Learner{opts: o, log: o.Logger.With("component", "learning")}
}

// Kind names the job kind of distillations (engine/jobs).
func (Job) Kind() string { return "learning_distil" }

// Outcome is what became of one insight.
type Outcome string

// Outcomes.
const (
	Saved    Outcome = "saved"    // a new learning document
	Merged   Outcome = "merged"   // folded into a near-duplicate
	Proposed Outcome = "proposed" // waiting in the approvals inbox
)

// runner returns the learning spec and model of agent or team name (kind)
// on the current snapshot; nil when it is gone or learns no more.
func (l *Learner) runner(kind spec.Kind, name string) (*spec.Learning, model.Provider, string, budget.Policy, error) {
	if l.opts.Agents == nil {
		return nil, nil, "", budget.Policy{}, errors.New("no agents to learn for")
	}
	t, err := l.opts.Agents.Pin(kind, name)
	if err != nil {
		return nil, nil, "", budget.Policy{}, err
	}
	defer t.Release()
	a, ok := t.Runner.(learner)
	if !ok || a.Learning() == nil {
		return nil, nil, "", budget.Policy{}, nil
	}
	p, id := a.LearningModel()
	return a.Learning(), p, id, budget.PolicyOf(t.Runner), nil
}

// Keep saves an insight of the run o, or proposes it when l's mode is
// propose.
func (l *Learner) Keep(ctx context.Context, ls *spec.Learning, o Origin, in Insight) (Outcome, error) {
	in, err := clean(in)
	if err != nil {
		return "", err
	}
	if ls.Mode == spec.LearnPropose {
		return Proposed, l.propose(ctx, ls, o, in)
	}
	return l.Save(ctx, ls.Knowledge, o, in)
}

// clean trims an insight and checks its bounds.
func clean(in Insight) (Insight, error) {
	in.Text, in.Topic = strings.TrimSpace(in.Text), strings.TrimSpace(in.Topic)
	if in.Text == "" {
		return in, tool.ArgumentError("text is empty: write the insight as one self-contained sentence or paragraph")
	}
	if len(in.Text) > MaxInsightBytes {
		return in, tool.ArgumentError("text is %d bytes, more than %d: keep one insight short", len(in.Text), MaxInsightBytes)
	}
	if len(in.Topic) > 200 {
		in.Topic = in.Topic[:200]
	}
	return in, nil
}

// propose adds the insight to the approvals inbox. Its id is derived from
// the run and the text, so a retried distillation proposes nothing twice.
func (l *Learner) propose(ctx context.Context, ls *spec.Learning, o Origin, in Insight) error {
	if l.opts.Proposals == nil {
		return errors.New("this server keeps no approvals inbox, so proposed learnings cannot wait for a decision: use learning mode always or agentic")
	}
	args := map[string]any{"text": in.Text, "knowledge": ls.Knowledge}
	if in.Topic != "" {
		args["topic"] = in.Topic
	}
	who := "agent"
	if o.Team {
		who, args["kind"] = "team", "team"
	}
	r := approval.Record{
		ID: proposalID(o.RunID, ls.Knowledge, in.Text), RunID: o.RunID, SessionID: o.SessionID,
		TargetKind: approval.TargetLearning, TargetName: o.Agent, UserID: o.UserID, Tool: "save_learning", Args: args,
		Reason:    fmt.Sprintf("%s %s proposes a learning for knowledge base %s", who, o.Agent, ls.Knowledge),
		Approvers: ls.Approvers, Status: approval.StatusPending, Default: spec.DecisionReject, CreatedAt: l.opts.Now().UTC(),
	}
	if err := l.opts.Proposals.ProposeApproval(ctx, r); err != nil {
		return fmt.Errorf("proposing a learning: %w", err)
	}
	l.log.Info("learning proposed", "approval_id", r.ID, "run_id", o.RunID, "agent", o.Agent, "knowledge", ls.Knowledge)
	return nil
}

// proposalID is a UUID-shaped hash of a proposal's run, base and text.
func proposalID(runID, knowledgeID, text string) string {
	h := sha256.Sum256([]byte(runID + "\x00" + knowledgeID + "\x00" + normalize(text)))
	h[6] = h[6]&0x0f | 0x80 // version 8: custom
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Decide applies a decided learning proposal: an approved one is saved
// into its knowledge base, a rejected one is dropped. Records of other
// kinds are ignored.
func (l *Learner) Decide(ctx context.Context, r *approval.Record) error {
	if r.TargetKind != approval.TargetLearning || !r.Approved() {
		return nil
	}
	text, _ := r.Args["text"].(string)
	topic, _ := r.Args["topic"].(string)
	base, _ := r.Args["knowledge"].(string)
	if base == "" {
		return fmt.Errorf("approval %s names no knowledge base", r.ID)
	}
	o := Origin{RunID: r.RunID, SessionID: r.SessionID, UserID: r.UserID, Agent: r.TargetName, Team: r.Args["kind"] == "team"}
	_, err := l.Save(ctx, base, o, Insight{Text: text, Topic: topic})
	return err
}

// Save adds an insight to knowledge base base as a text document, unless a
// near-duplicate learning is there: then it is merged into that one (its
// count, run_ids and user_ids grow) and nothing is added.
//
// A near-duplicate is a learning whose text equals the insight's once
// case, punctuation and spacing are ignored, or whose cosine similarity to
// it, with the base's embedder (a vector search), is at least the
// threshold. Merging the same run twice changes nothing, so a retried job
// is idempotent.
func (l *Learner) Save(ctx context.Context, base string, o Origin, in Insight) (Outcome, error) {
	in, err := clean(in)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	dup, err := l.duplicate(ctx, base, in.Text)
	if err != nil {
		return "", err
	}
	if dup != "" {
		return Merged, l.merge(ctx, dup, o)
	}
	now := l.opts.Now().UTC()
	meta := map[string]any{
		"source": Source, "run_id": o.RunID, "session_id": o.SessionID, "user_id": o.UserID, "agent": o.Agent,
		"created_at": now.Format(time.RFC3339), MetaCount: 1, MetaRunIDs: []any{o.RunID}, MetaUserIDs: []any{o.UserID},
	}
	if o.Team {
		delete(meta, "agent")
		meta["team"] = o.Agent
	}
	if in.Topic != "" {
		meta["topic"] = in.Topic
	}
	d, created, err := l.opts.Knowledge.Submit(ctx, kb.Upload{KnowledgeID: base, Name: name(in), Description: fmt.Sprintf("learned by %s from run %s", o.Agent, o.RunID),
		Metadata: meta, Content: []byte(in.Text), Source: "text"})
	if err != nil {
		return "", fmt.Errorf("saving a learning into %s: %w", base, err)
	}
	if !created {
		// The same text is there (not yet indexed when searched).
		return Merged, l.merge(ctx, d.ID, o)
	}
	l.await(ctx, d.ID)
	l.log.Info("learning saved", "document_id", d.ID, "run_id", o.RunID, "agent", o.Agent, "knowledge", base)
	return Saved, nil
}

// name is a learning document's name: its topic or the start of its text.
func name(in Insight) string {
	s := in.Topic
	if s == "" {
		s = tool.Head(in.Text, 60)
	}
	return "learning: " + s + ".txt"
}

// duplicate returns the id of a near-duplicate learning of text in base,
// "" when there is none.
func (l *Learner) duplicate(ctx context.Context, base, text string) (string, error) {
	hits, err := l.opts.Knowledge.Search(ctx, []string{base}, text, knowledge.ModeVector, 5, knowledge.Filters{"source": Source})
	if err != nil {
		return "", fmt.Errorf("searching %s for a learning like this one: %w", base, err)
	}
	norm := normalize(text)
	for _, h := range hits {
		if h.Score >= l.opts.Threshold || normalize(h.Text) == norm {
			return h.DocumentID, nil
		}
	}
	return "", nil
}

// merge records run o on learning id.
func (l *Learner) merge(ctx context.Context, id string, o Origin) error {
	d, err := l.opts.Knowledge.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("reading learning %s: %w", id, err)
	}
	runs := stringList(d.Metadata[MetaRunIDs])
	if slices.Contains(runs, o.RunID) {
		return nil // this run was merged already: a retried job
	}
	meta := make(map[string]any, len(d.Metadata)+3)
	for k, v := range d.Metadata {
		meta[k] = v
	}
	runs = append(runs, o.RunID)
	if len(runs) > maxRunIDs {
		runs = runs[len(runs)-maxRunIDs:]
	}
	users := stringList(d.Metadata[MetaUserIDs])
	if !slices.Contains(users, o.UserID) {
		users = append(users, o.UserID)
	}
	meta[MetaRunIDs], meta[MetaUserIDs] = anys(runs), anys(users)
	meta[MetaCount] = count(d.Metadata[MetaCount]) + 1
	meta["last_run_id"] = o.RunID
	meta["updated_at"] = l.opts.Now().UTC().Format(time.RFC3339)
	if _, err := l.opts.Knowledge.Patch(ctx, id, nil, nil, meta); err != nil {
		return fmt.Errorf("merging into learning %s: %w", id, err)
	}
	l.await(ctx, id)
	l.log.Info("learning merged", "document_id", id, "run_id", o.RunID, "agent", o.Agent)
	return nil
}

// await waits (bounded) for document id to be indexed, so that the next
// duplicate search finds it. A document still processing after the wait
// is indexed later all the same.
func (l *Learner) await(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, ingestWait)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		d, err := l.opts.Knowledge.Get(ctx, id)
		if err != nil || d.Status != knowledge.StatusProcessing {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// normalize folds case and drops punctuation and extra spaces.
func normalize(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToLower(s) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		default:
			space = true
		}
	}
	return b.String()
}

func stringList(v any) []string {
	var out []string
	switch l := v.(type) {
	case []any:
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = append(out, l...)
	}
	return out
}

func anys(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

func count(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	case int64:
		return int(n)
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	}
	return 1
}

// PinFunc adapts a function to session.Targets: the engine, which is built
// after the Learner whose save_learning tool it compiles.
type PinFunc func(kind spec.Kind, name string) (session.Target, error)

// Pin implements session.Targets.
func (f PinFunc) Pin(kind spec.Kind, name string) (session.Target, error) { return f(kind, name) }
