package console_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/summary"
	"github.com/troupehq/troupe/store"
)

// summaryModels add the summarizer's Model document (on the anthropic fake,
// told apart by its model id).
const summaryModels = historyModels + "kind: Model\nname: summ\nprovider: anthropic\nmodel: summ\napi_key: sk-test\n---\n"

// byModel sends the summarizer's requests (model summ) to summ and the
// others to rest, so that each side's requests can be asserted alone.
type byModel struct {
	summ, rest model.Provider
}

func (p byModel) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	if req.Model == "summ" {
		return p.summ.Generate(ctx, req, onDelta)
	}
	return p.rest.Generate(ctx, req, onDelta)
}

// summarizer answers each call with summary S<n> and topic t<n>, as JSON,
// and keeps the requests.
type summarizer struct {
	mu   sync.Mutex
	reqs []model.Request
	// block, when set, makes calls wait for it to close (or their context
	// to end) before answering.
	block chan struct{}
}

func (s *summarizer) Generate(ctx context.Context, req *model.Request, _ func(model.Delta)) (*model.Response, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, *req)
	n := len(s.reqs)
	block := s.block
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &model.Response{Content: fmt.Sprintf(`{"summary": "S%d", "topics": ["t%d"]}`, n, n), Usage: model.Usage{InputTokens: 100, OutputTokens: 10}}, nil
}

func (s *summarizer) requests() []model.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]model.Request(nil), s.reqs...)
}

// waitJobsIdle waits until the server's job queues have nothing waiting or
// running: the summary job a turn queued has run.
func waitJobsIdle(t testing.TB, ts *testServer) { t.Helper(); waitJobsIdleFor(t, ts, 10*time.Second) }

// waitJobsIdleFor is waitJobsIdle, waiting up to d.
func waitJobsIdleFor(t testing.TB, ts *testServer, d time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		if ts.jobs.Deferred() > 0 {
			return false // a run's jobs are still being inserted
		}
		stats, err := ts.jobs.Stats(t.Context())
		if err != nil {
			return false
		}
		for _, q := range stats {
			if q.Counts.Waiting()+q.Counts.Running > 0 {
				return false
			}
		}
		return true
	}, d, 5*time.Millisecond)
}

// summaryTurns runs messages as turns of one session, waiting after each
// for the summary job it may have queued, and returns the session id.
func summaryTurns(t *testing.T, ts *testServer, path string, messages ...string) string {
	t.Helper()
	sessionID := ""
	for _, m := range messages {
		body := fmt.Sprintf(`{"message":%q,"stream":false}`, m)
		if sessionID != "" {
			body = fmt.Sprintf(`{"message":%q,"stream":false,"session_id":%q}`, m, sessionID)
		}
		var out runJSON
		ts.json(http.MethodPost, path, "", body, http.StatusOK, &out)
		require.Equal(t, "COMPLETED", out.Status, m)
		sessionID = out.SessionID
		waitJobsIdle(t, ts)
	}
	return sessionID
}

// summarySection is the instructions' section a summary S<n> with topic
// t<n> makes.
func summarySection(n int) string {
	return session.SummaryPrompt(&session.Summary{Summary: fmt.Sprintf("S%d", n), Topics: []string{fmt.Sprintf("t%d", n)}})
}

func questions(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("question %d?", i+1)
	}
	return out
}

// TestAgentSummary: what the agent's model and the summarizer receive on
// each turn. A turn ("question N?", "answer N") estimates to 13 tokens, so
// with threshold_tokens 30 and keep_runs 1 the third unfolded run crosses:
// the job folds all but the newest into the summary, which then replaces
// them in the instructions. The job runs once per crossing.
func TestAgentSummary(t *testing.T) {
	t.Parallel()
	var steps []fake.Step
	for i := 1; i <= 6; i++ {
		steps = append(steps, fake.Step{Content: fmt.Sprintf("answer %d", i)})
	}
	script, summ := fake.New(steps...), &summarizer{}
	ts := startServer(t, withProvider("anthropic", byModel{summ: summ, rest: script}),
		withSpecs(summaryModels+"kind: Agent\nname: folder\nmodel: scripted\nsummary: {model: summ, threshold_tokens: 30, keep_runs: 1}\n"))
	sessionID := summaryTurns(t, ts, "/agents/folder/runs", questions(6)...)

	q := func(n int) model.Message { return user(fmt.Sprintf("question %d?", n)) }
	a := func(n int) model.Message { return assistant(fmt.Sprintf("answer %d", n)) }
	want := []struct {
		system string
		msgs   []model.Message
	}{
		{"", []model.Message{q(1)}},
		{"", []model.Message{q(1), a(1), q(2)}},
		{"", []model.Message{q(1), a(1), q(2), a(2), q(3)}},
		// Turn 3 crossed (39 tokens > 30): runs 1 and 2 folded into S1.
		{summarySection(1), []model.Message{q(3), a(3), q(4)}},
		{summarySection(1), []model.Message{q(3), a(3), q(4), a(4), q(5)}},
		// Turn 5 crossed again: S1, runs 3 and 4 folded into S2.
		{summarySection(2), []model.Message{q(5), a(5), q(6)}},
	}
	reqs := script.Requests()
	require.Len(t, reqs, len(want))
	for i, w := range want {
		require.Equal(t, w.system, reqs[i].System, "turn %d", i+1)
		require.Equal(t, w.msgs, reqs[i].Messages, "turn %d", i+1)
	}
	sreqs := summ.requests()
	require.Len(t, sreqs, 2, "one summary per threshold crossing")
	require.Equal(t, summary.DefaultPrompt+"\n\n"+`Answer with JSON only: {"summary": "<the updated summary>", "topics": ["<short topic>", ...]}.`, sreqs[0].System)
	require.Equal(t, []model.Message{user("Previous summary:\n(none)\n\nNew turns:\nuser: question 1?\nassistant: answer 1\nuser: question 2?\nassistant: answer 2")}, sreqs[0].Messages)
	require.Equal(t, []model.Message{user("Previous summary:\nS1\nTopics: t1\n\nNew turns:\nuser: question 3?\nassistant: answer 3\nuser: question 4?\nassistant: answer 4")}, sreqs[1].Messages)

	// The session carries the summary (AgentOS SessionSummary), and its
	// cost counts the summarizer's tokens.
	var sess struct {
		SessionSummary struct {
			Summary   string    `json:"summary"`
			Topics    []string  `json:"topics"`
			UpdatedAt time.Time `json:"updated_at"`
		} `json:"session_summary"`
	}
	ts.json(http.MethodGet, "/sessions/"+sessionID, "", "", http.StatusOK, &sess)
	require.Equal(t, "S2", sess.SessionSummary.Summary)
	require.Equal(t, []string{"t2"}, sess.SessionSummary.Topics)
	require.WithinDuration(t, time.Now(), sess.SessionSummary.UpdatedAt, time.Minute)
	stored, err := ts.db.SessionSummary(t.Context(), sessionID)
	require.NoError(t, err)
	require.Equal(t, 2, stored.Metrics.ModelRequests)
	require.Equal(t, 220, stored.Metrics.TotalTokens)

	// The session page shows it.
	resp, body := ts.page("GET", "/ui/sessions/"+sessionID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `data-testid="session-summary"`)
	require.Contains(t, body, "S2")
	require.Contains(t, body, "t2")
}

// TestTeamSummary: a coordinate team's leader gets the team session's
// summary in its instructions and only the unfolded team turns as history.
func TestTeamSummary(t *testing.T) {
	t.Parallel()
	var steps []fake.Step
	for i := 1; i <= 4; i++ {
		steps = append(steps, fake.Step{Content: fmt.Sprintf("answer %d", i)})
	}
	leader, summ := fake.New(steps...), &summarizer{}
	members := fake.New()
	specs := summaryModels + "kind: Agent\nname: sum-helper\ndescription: Helps.\nmodel: scripted\n---\n" +
		"kind: Team\nname: sum-crew\nmode: coordinate\nmodel: lead\nmembers: [sum-helper]\ninstructions: Lead well.\n" +
		"summary: {model: summ, threshold_tokens: 20, keep_runs: 1}\n"
	ts := startServer(t, withProvider("ollama", leader), withProvider("anthropic", byModel{summ: summ, rest: members}), withSpecs(specs))
	summaryTurns(t, ts, "/teams/sum-crew/runs", questions(4)...)

	q := func(n int) model.Message { return user(fmt.Sprintf("question %d?", n)) }
	a := func(n int) model.Message { return assistant(fmt.Sprintf("answer %d", n)) }
	lead := "Lead well."
	want := []struct {
		system string
		msgs   []model.Message
	}{
		{lead, []model.Message{q(1)}},
		{lead, []model.Message{q(1), a(1), q(2)}},
		// Turn 2 crossed (26 > 20): run 1 folded into S1.
		{lead + "\n\n" + summarySection(1), []model.Message{q(2), a(2), q(3)}},
		{lead + "\n\n" + summarySection(2), []model.Message{q(3), a(3), q(4)}},
	}
	reqs := leader.Requests()
	require.Len(t, reqs, len(want))
	for i, w := range want {
		require.True(t, strings.HasPrefix(reqs[i].System, lead), "turn %d: %q", i+1, reqs[i].System)
		require.Equal(t, w.system, leaderSystem(reqs[i].System), "turn %d", i+1)
		require.Equal(t, w.msgs, reqs[i].Messages, "turn %d", i+1)
	}
	require.Len(t, summ.requests(), 3)
	require.Empty(t, members.Requests())
}

// leaderSystem is a coordinate leader's instructions without the member
// roster the team adds after the spec's instructions.
func leaderSystem(system string) string {
	if i := strings.Index(system, "\n\n<session_summary>"); i >= 0 {
		head := system[:i]
		if j := strings.Index(head, "\n\n"); j >= 0 {
			head = head[:j]
		}
		return head + system[i:]
	}
	if j := strings.Index(system, "\n\n"); j >= 0 {
		return system[:j]
	}
	return system
}

// TestSummaryBudget: over 200 turns with small budgets, what the model
// receives (summary and history) stays under the configured budget on
// every turn, and the summarizer runs once per crossing.
func TestSummaryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("200 turns")
	}
	t.Parallel()
	const turns, threshold, historyTokens = 200, 60, 60
	script := &fake.Provider{Repeat: &fake.Step{Content: "an answer of some length, to fill the history"}}
	summ := &summarizer{}
	ts := startServer(t, withProvider("anthropic", byModel{summ: summ, rest: script}),
		withSpecs(summaryModels+fmt.Sprintf("kind: Agent\nname: long\nmodel: scripted\nhistory: 50\nhistory_tokens: %d\nsummary: {model: summ, threshold_tokens: %d, keep_runs: 2}\n", historyTokens, threshold)))
	// Each turn from the third crosses (three unfolded runs of 23 tokens
	// pass 60; two are kept): the turn waits for its summary S<turn-2>,
	// read from the store, before the next.
	sessionID := ""
	for i, m := range questions(turns) {
		body := fmt.Sprintf(`{"message":%q,"stream":false,"session_id":%q}`, m, sessionID)
		if sessionID == "" {
			body = fmt.Sprintf(`{"message":%q,"stream":false}`, m)
		}
		var out runJSON
		ts.json(http.MethodPost, "/agents/long/runs", "", body, http.StatusOK, &out)
		sessionID = out.SessionID
		if want := i + 1 - 2; want > 0 {
			require.Eventually(t, func() bool {
				sum, err := ts.db.SessionSummary(t.Context(), sessionID)
				return err == nil && sum != nil && sum.Summary == fmt.Sprintf("S%d", want)
			}, 10*time.Second, time.Millisecond, "turn %d", i+1)
		}
	}
	waitJobsIdle(t, ts)

	reqs := script.Requests()
	require.Len(t, reqs, turns)
	// A turn's run is "question N?" and the answer: 4+3 + 4+12 = 23 tokens;
	// folding starts once three unfolded runs pass 60, keeping two.
	maxContext := 0
	for i, r := range reqs {
		history := r.Messages[:len(r.Messages)-1]
		n := session.EstimateTokens(history) + session.EstimateTokens([]model.Message{{Content: r.System}})
		require.LessOrEqual(t, session.EstimateTokens(history), historyTokens, "turn %d", i+1)
		require.LessOrEqual(t, n, historyTokens+session.EstimateTokens([]model.Message{{Content: summarySection(999)}}), "turn %d", i+1)
		maxContext = max(maxContext, n)
	}
	crossings := len(summ.requests())
	// Every crossing folds one run (three unfolded, two kept): one job per
	// run after the third.
	require.Equal(t, turns-2, crossings)
	t.Logf("200 turns: largest context (summary + history) %d estimated tokens; %d summaries", maxContext, crossings)
}

// TestSummaryAPI: the summary is edited through PATCH /sessions/{id} and
// the next turn reads the edit; bob can neither read nor edit alice's.
func TestSummaryAPI(t *testing.T) {
	t.Parallel()
	script := &fake.Provider{Repeat: &fake.Step{Content: "ok"}}
	ts := startServer(t, withKeys(keys), withProvider("anthropic", byModel{summ: &summarizer{}, rest: script}),
		withSpecs(summaryModels+"kind: Agent\nname: edited\nmodel: scripted\nsummary: true\n"))
	var run runJSON
	ts.json(http.MethodPost, "/agents/edited/runs", aliceKey, `{"message":"hi","stream":false}`, http.StatusOK, &run)

	patch := `{"summary":{"summary":"Alice likes tea.","topics":["tea"]}}`
	ts.json(http.MethodPatch, "/sessions/"+run.SessionID, bobKey, patch, http.StatusNotFound, nil)
	ts.json(http.MethodGet, "/sessions/"+run.SessionID, bobKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodPatch, "/sessions/"+run.SessionID, aliceKey, `{}`, http.StatusUnprocessableEntity, nil)
	var sess map[string]any
	ts.json(http.MethodPatch, "/sessions/"+run.SessionID, aliceKey, patch, http.StatusOK, &sess)
	got := sess["session_summary"].(map[string]any)
	require.Equal(t, "Alice likes tea.", got["summary"])
	require.Equal(t, []any{"tea"}, got["topics"])

	ts.json(http.MethodPost, "/agents/edited/runs", aliceKey, `{"message":"again","stream":false,"session_id":"`+run.SessionID+`"}`, http.StatusOK, nil)
	reqs := script.Requests()
	require.Equal(t, session.SummaryPrompt(&session.Summary{Summary: "Alice likes tea.", Topics: []string{"tea"}}), reqs[1].System)
	// The edited summary covers no run yet: the history is the whole session.
	require.Equal(t, []model.Message{user("hi"), assistant("ok"), user("again")}, reqs[1].Messages)
}

// TestSummaryCountsAgainstBudgetsAndSpend: the summarizer's tokens count
// against the agent's budgets, as its runs' do, and in the spend of the
// run that caused the summary; a spent budget skips a summary rather than
// overrunning it. Each turn spends 10 tokens, the summarizer 110; turns 3
// and 5 cross the threshold.
func TestSummaryCountsAgainstBudgetsAndSpend(t *testing.T) {
	t.Parallel()
	var steps []fake.Step
	for i := 1; i <= 6; i++ {
		steps = append(steps, fake.Step{Content: fmt.Sprintf("answer %d", i), Usage: model.Usage{InputTokens: 5, OutputTokens: 5}})
	}
	script, summ := fake.New(steps...), &summarizer{}
	ts := startServer(t, withProvider("anthropic", byModel{summ: summ, rest: script}),
		withSpecs(summaryModels+"kind: Budget\nname: pot\nlimits: {tokens: 160}\n---\n"+
			"kind: Agent\nname: thrifty\nmodel: scripted\nbudgets: [pot]\nsummary: {model: summ, threshold_tokens: 30, keep_runs: 1}\n"))
	sessionID := summaryTurns(t, ts, "/agents/thrifty/runs", questions(5)...)
	// After turn 3: 30 + 110 tokens. Turn 5 starts at 150 (under 160) and
	// ends at 160: its crossing finds the pot spent.
	require.Len(t, summ.requests(), 1, "the second crossing is skipped: the pot is spent")
	var sess struct {
		SessionSummary struct {
			Summary string `json:"summary"`
		} `json:"session_summary"`
	}
	ts.json(http.MethodGet, "/sessions/"+sessionID, "", "", http.StatusOK, &sess)
	require.Equal(t, "S1", sess.SessionSummary.Summary)

	var b struct {
		Usage []struct {
			Tokens int `json:"tokens"`
		} `json:"usage"`
	}
	ts.json(http.MethodGet, "/budgets/pot", "", "", http.StatusOK, &b)
	require.Len(t, b.Usage, 1)
	require.Equal(t, 5*10+110, b.Usage[0].Tokens, "five turns and one summary")
	spend, err := ts.db.SpendTotal(t.Context(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour), store.Filter{})
	require.NoError(t, err)
	require.Equal(t, int64(5*10+110), spend.Tokens, "the summary is in the spend of the run it followed")
}
