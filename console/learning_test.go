package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/learning"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/store"
)

// learningSpecs: student learns into lessons (mode set per test), reader
// searches lessons.
func learningSpecs(mode string) string {
	return historyModels + `kind: Knowledge
name: lessons
description: What agents learned.
---
kind: Agent
name: student
model: scripted
history: 0
learning: {knowledge: lessons, mode: ` + mode + `}
---
kind: Agent
name: reader
model: scripted
history: 0
tools: [knowledge_search]
knowledge: [lessons]
`
}

const (
	insightPayments = "The payments API rejects refunds older than 90 days with HTTP 409."
	insightCoffee   = "The office coffee machine is descaled every Friday at noon."
)

// lastUser returns the content of a request's last user message.
func lastUser(r *model.Request) string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == model.RoleUser {
			return r.Messages[i].Content
		}
	}
	return ""
}

// distils matches the learning job's request of the run whose user message
// is msg.
func distils(msg string) func(*model.Request) bool {
	return func(r *model.Request) bool {
		return r.System == learning.DefaultPrompt && strings.HasPrefix(lastUser(r), "User message:\n"+msg+"\n")
	}
}

// answers matches a run's first request for message msg.
func answers(msg string) func(*model.Request) bool {
	return func(r *model.Request) bool {
		return r.System != learning.DefaultPrompt && len(r.Messages) == 1 && lastUser(r) == msg
	}
}

// afterTool matches a run's request that follows a tool call, for msg.
func afterTool(msg string) func(*model.Request) bool {
	return func(r *model.Request) bool {
		return len(r.Messages) == 3 && r.Messages[0].Content == msg
	}
}

// readerSteps script reader: search lessons for query, then answer.
func readerSteps(msg, query string) []fake.Step {
	return []fake.Step{
		{Match: answers(msg), ToolCalls: []model.ToolCall{{ID: "k1", Name: "knowledge_search", Arguments: `{"query":"` + query + `"}`}}},
		{Match: afterTool(msg), Content: "found it"},
	}
}

// learnings lists the learning documents of lessons.
func learnings(t *testing.T, ts *testServer) []knowledge.Document {
	t.Helper()
	docs, _, err := ts.kb.List(context.Background(), knowledge.DocumentQuery{KnowledgeID: "lessons", Limit: 100})
	require.NoError(t, err)
	return slices.DeleteFunc(docs, func(d knowledge.Document) bool { return d.Metadata["source"] != learning.Source })
}

// waitLearnings waits until lessons holds n learnings, all indexed.
func waitLearnings(t *testing.T, ts *testServer, n int) []knowledge.Document {
	t.Helper()
	var docs []knowledge.Document
	require.Eventually(t, func() bool {
		docs = learnings(t, ts)
		if len(docs) != n {
			return false
		}
		for _, d := range docs {
			if d.Status != knowledge.StatusCompleted {
				return false
			}
		}
		return true
	}, 15*time.Second, 10*time.Millisecond, "want %d indexed learnings", n)
	return docs
}

// searchResult runs reader for msg in a new session and returns what the
// model received as knowledge_search's result.
func searchResult(t *testing.T, ts *testServer, script *fake.Provider, key, msg string) string {
	t.Helper()
	ts.json(http.MethodPost, "/agents/reader/runs", key, `{"message":"`+msg+`","stream":false}`, http.StatusOK, nil)
	for _, r := range script.Requests() {
		if afterTool(msg)(&r) {
			require.Equal(t, model.RoleTool, r.Messages[2].Role)
			return r.Messages[2].Content
		}
	}
	t.Fatalf("reader never received a search result for %q", msg)
	return ""
}

// TestLearningAlways: after alice's run of student, the learning job asks
// the model with the run's transcript and saves its insight, linked to the
// run; bob's run of reader, in another session, finds it. The same insight
// learned again is merged, not added; a malformed answer saves nothing.
func TestLearningAlways(t *testing.T) {
	t.Parallel()
	steps := []fake.Step{
		{Match: answers("how do refunds work?"), Content: "Refunds older than 90 days fail."},
		{Match: distils("how do refunds work?"), Content: "```json\n[{\"text\": \"" + insightPayments + "\", \"topic\": \"payments\"}]\n```"},
		{Match: answers("refunds again?"), Content: "Still 90 days."},
		{Match: distils("refunds again?"), Content: `["the payments API rejects refunds older than 90 days with HTTP 409"]`},
		{Match: answers("hello"), Content: "hi"},
		{Match: distils("hello"), Content: "Nothing worth keeping here."},
	}
	steps = append(steps, readerSteps("what about refunds?", "refunds older than 90 days")...)
	script := fake.New(steps...)
	ts := startServer(t, withKeys(keys), withProvider("anthropic", script), withSpecs(learningSpecs("always")))

	var run runJSON
	ts.json(http.MethodPost, "/agents/student/runs", aliceKey, `{"message":"how do refunds work?","stream":false}`, http.StatusOK, &run)
	docs := waitLearnings(t, ts, 1)
	d := docs[0]
	content, err := ts.db.Knowledge().Content(context.Background(), d.ID)
	require.NoError(t, err)
	require.Equal(t, insightPayments, string(content))
	created, _ := d.Metadata["created_at"].(string)
	require.NotEmpty(t, created)
	require.Equal(t, map[string]any{
		"source": "learning", "run_id": run.RunID, "session_id": run.SessionID, "user_id": "alice", "agent": "student",
		"topic": "payments", "created_at": created, "count": float64(1), "run_ids": []any{run.RunID}, "user_ids": []any{"alice"},
	}, d.Metadata)

	// The job's request: the default prompt and the run's transcript.
	var distil *model.Request
	for _, r := range script.Requests() {
		if distils("how do refunds work?")(&r) {
			distil = &r
		}
	}
	require.NotNil(t, distil)
	require.Equal(t, []model.Message{{Role: model.RoleUser, Content: "User message:\nhow do refunds work?\n\nAgent's answer:\nRefunds older than 90 days fail.\n"}}, distil.Messages)
	require.Empty(t, distil.Tools)

	// Bob, in his own session, is answered with alice's learning.
	require.Contains(t, searchResult(t, ts, script, bobKey, "what about refunds?"), insightPayments)

	// The same insight, written differently, merges into the first.
	var again runJSON
	ts.json(http.MethodPost, "/agents/student/runs", bobKey, `{"message":"refunds again?","stream":false}`, http.StatusOK, &again)
	require.Eventually(t, func() bool {
		docs := learnings(t, ts)
		return len(docs) == 1 && docs[0].Metadata["count"] == float64(2) && docs[0].Status == knowledge.StatusCompleted
	}, 15*time.Second, 10*time.Millisecond)
	d = learnings(t, ts)[0]
	require.Equal(t, []any{run.RunID, again.RunID}, d.Metadata["run_ids"])
	require.Equal(t, []any{"alice", "bob"}, d.Metadata["user_ids"])
	require.Equal(t, "alice", d.Metadata["user_id"], "the learning stays its author's")

	// A malformed answer keeps nothing (and fails no run).
	ts.json(http.MethodPost, "/agents/student/runs", aliceKey, `{"message":"hello","stream":false}`, http.StatusOK, nil)
	require.Eventually(t, func() bool {
		for _, r := range script.Requests() {
			if distils("hello")(&r) {
				return true
			}
		}
		return false
	}, 15*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, learnings(t, ts), 1)

	// The console's knowledge page shows the learning's metadata and run.
	_, body := ts.page(http.MethodGet, "/ui/knowledge", adminKey, nil)
	require.Contains(t, body, `data-testid="doc-metadata"`)
	require.Contains(t, body, `href="/ui/runs/`+run.RunID+`/trace" data-testid="doc-run">learned from run `+run.RunID+`</a>`)
}

// TestLearningAgentic: the model of an agentic learner gets save_learning;
// what it saves is linked to its run and found by another session's run.
func TestLearningAgentic(t *testing.T) {
	t.Parallel()
	msg := "remember the coffee schedule"
	steps := []fake.Step{
		{Match: answers(msg), ToolCalls: []model.ToolCall{{ID: "l1", Name: "save_learning", Arguments: `{"text":"` + insightCoffee + `","topic":"office"}`}}},
		{Match: afterTool(msg), Content: "Noted."},
	}
	steps = append(steps, readerSteps("when is the coffee machine descaled?", "coffee machine descaled")...)
	script := fake.New(steps...)
	ts := startServer(t, withKeys(keys), withProvider("anthropic", script), withSpecs(learningSpecs("agentic")))

	var run runJSON
	ts.json(http.MethodPost, "/agents/student/runs", aliceKey, `{"message":"`+msg+`","stream":false}`, http.StatusOK, &run)
	reqs := script.Requests()
	require.Len(t, reqs, 2, "an agentic learner is not distilled after its runs")
	var tools []string
	for _, d := range reqs[0].Tools {
		tools = append(tools, d.Name)
	}
	require.Equal(t, []string{"save_learning"}, tools)
	require.Equal(t, model.Message{Role: model.RoleTool, ToolCallID: "l1", Name: "save_learning", Content: "Saved."}, reqs[1].Messages[2])

	d := waitLearnings(t, ts, 1)[0]
	require.Equal(t, run.RunID, d.Metadata["run_id"])
	require.Equal(t, run.SessionID, d.Metadata["session_id"])
	require.Equal(t, "alice", d.Metadata["user_id"])
	require.Equal(t, "office", d.Metadata["topic"])

	require.Contains(t, searchResult(t, ts, script, bobKey, "when is the coffee machine descaled?"), insightCoffee)
}

// TestLearningPropose: a proposed learning waits in the inbox; nothing is
// in the knowledge base until it is approved; a rejected one never is; a
// second decision is refused.
func TestLearningPropose(t *testing.T) {
	t.Parallel()
	script := fake.New(
		fake.Step{Match: answers("refunds?"), Content: "90 days."},
		fake.Step{Match: distils("refunds?"), Content: `[{"text":"` + insightPayments + `"},{"text":"` + insightCoffee + `","topic":"office"}]`},
	)
	ts := startServer(t, withKeys(keys), withProvider("anthropic", script), withSpecs(learningSpecs("propose")))

	var run runJSON
	ts.json(http.MethodPost, "/agents/student/runs", aliceKey, `{"message":"refunds?","stream":false}`, http.StatusOK, &run)
	type record struct {
		ID         string         `json:"id"`
		RunID      string         `json:"run_id"`
		TargetKind string         `json:"target_kind"`
		AgentID    string         `json:"agent_id"`
		UserID     string         `json:"user_id"`
		Tool       string         `json:"tool_name"`
		Args       map[string]any `json:"tool_args"`
		Status     string         `json:"status"`
	}
	var page struct {
		Data []record `json:"data"`
	}
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/approvals?status=pending", adminKey, "", http.StatusOK, &page)
		return len(page.Data) == 2
	}, 15*time.Second, 10*time.Millisecond)
	byText := map[string]record{}
	for _, r := range page.Data {
		require.Equal(t, "learning", r.TargetKind)
		require.Equal(t, run.RunID, r.RunID)
		require.Equal(t, "alice", r.UserID)
		require.Equal(t, "save_learning", r.Tool)
		byText[r.Args["text"].(string)] = r
	}
	require.Equal(t, map[string]any{"text": insightCoffee, "topic": "office", "knowledge": "lessons"}, byText[insightCoffee].Args)
	require.Empty(t, learnings(t, ts), "nothing is learned before a decision")

	// The inbox shows the insight, its agent and its knowledge base.
	_, body := ts.page(http.MethodGet, "/ui/approvals", adminKey, nil)
	require.Contains(t, body, `<dd data-testid="approval-insight">`+insightCoffee+`</dd>`)
	require.Contains(t, body, `data-testid="approval-knowledge">lessons</a>`)

	// Alice (no approvals scope) cannot decide.
	status, _, _ := ts.do(http.MethodPost, "/approvals/"+byText[insightPayments].ID+"/resolve", aliceKey, "application/json", `{"approved":true}`)
	require.Equal(t, http.StatusForbidden, status)

	ts.json(http.MethodPost, "/approvals/"+byText[insightCoffee].ID+"/resolve", adminKey, `{"approved":false}`, http.StatusOK, nil)
	ts.json(http.MethodPost, "/approvals/"+byText[insightPayments].ID+"/resolve", adminKey, `{"approved":true}`, http.StatusOK, nil)
	docs := waitLearnings(t, ts, 1)
	content, err := ts.db.Knowledge().Content(context.Background(), docs[0].ID)
	require.NoError(t, err)
	require.Equal(t, insightPayments, string(content), "the approved insight, not the rejected one")
	require.Equal(t, run.RunID, docs[0].Metadata["run_id"])

	status, body, _ = ts.do(http.MethodPost, "/approvals/"+byText[insightCoffee].ID+"/resolve", adminKey, "application/json", `{"approved":true}`)
	require.Equal(t, http.StatusConflict, status, body)
	require.Contains(t, body, "was already rejected")
	require.Len(t, learnings(t, ts), 1)
}

// TestDeleteUserErasesLearnings: DELETE /users/{id} (admin only) removes
// the user's learnings, memories and sessions, and no one else's.
func TestDeleteUserErasesLearnings(t *testing.T) {
	t.Parallel()
	msg := "save this"
	// Each user's run saves an insight of their own.
	var steps []fake.Step
	for u, text := range map[string]string{"alice": insightPayments, "bob": insightCoffee} {
		m := msg + " for " + u
		steps = append(steps,
			fake.Step{Match: answers(m), ToolCalls: []model.ToolCall{{ID: "l1", Name: "save_learning", Arguments: `{"text":"` + text + `"}`}}},
			fake.Step{Match: afterTool(m), Content: "Noted."})
	}
	script := fake.New(steps...)
	ts := startServer(t, withKeys(keys), withProvider("anthropic", script), withSpecs(learningSpecs("agentic")))

	sessions := map[string]string{}
	for _, u := range []struct{ name, key string }{{"alice", aliceKey}, {"bob", bobKey}} {
		var run runJSON
		ts.json(http.MethodPost, "/agents/student/runs", u.key, `{"message":"`+msg+` for `+u.name+`","stream":false}`, http.StatusOK, &run)
		sessions[u.name] = run.SessionID
		require.Eventually(t, func() bool {
			var r runJSON
			ts.json(http.MethodGet, "/agents/student/runs/"+run.RunID, adminKey, "", http.StatusOK, &r)
			return r.Status == "COMPLETED"
		}, 15*time.Second, 10*time.Millisecond)
	}
	require.Len(t, waitLearnings(t, ts, 2), 2)
	for _, key := range []string{aliceKey, bobKey} {
		ts.json(http.MethodPost, "/memories", key, `{"memory":"Prefers short answers","topics":["style"]}`, http.StatusCreated, nil)
	}

	for _, key := range []string{aliceKey, bobKey, readerKey} {
		status, _, _ := ts.do(http.MethodDelete, "/users/alice", key, "", "")
		require.Equal(t, http.StatusForbidden, status)
	}
	var erased struct {
		UserID string         `json:"user_id"`
		Erased map[string]int `json:"erased"`
	}
	ts.json(http.MethodDelete, "/users/alice", adminKey, "", http.StatusOK, &erased)
	require.Equal(t, "alice", erased.UserID)
	require.Equal(t, map[string]int{"learnings": 1, "memories": 1, "sessions": 1}, erased.Erased)
	var mems struct {
		Data []struct {
			UserID string `json:"user_id"`
		} `json:"data"`
	}
	ts.json(http.MethodGet, "/memories", adminKey, "", http.StatusOK, &mems)
	require.Len(t, mems.Data, 1)
	require.Equal(t, "bob", mems.Data[0].UserID, "only alice's memory is gone")

	docs := learnings(t, ts)
	require.Len(t, docs, 1)
	require.Equal(t, "bob", docs[0].Metadata["user_id"])
	hits, err := ts.kb.Search(context.Background(), []string{"lessons"}, "refunds older than 90 days", "", 10, nil)
	require.NoError(t, err)
	for _, h := range hits {
		require.NotEqual(t, insightPayments, h.Text, "alice's learning is not searchable any more")
	}
	status, _, _ := ts.do(http.MethodGet, "/sessions/"+sessions["alice"], adminKey, "", "")
	require.Equal(t, http.StatusNotFound, status)
	ts.json(http.MethodGet, "/sessions/"+sessions["bob"], adminKey, "", http.StatusOK, nil)

	// Erasing again finds nothing left.
	ts.json(http.MethodDelete, "/users/alice", adminKey, "", http.StatusOK, &erased)
	require.Equal(t, map[string]int{"learnings": 0, "memories": 0, "sessions": 0}, erased.Erased)
	var raw json.RawMessage
	ts.json(http.MethodGet, "/sessions/"+sessions["bob"], bobKey, "", http.StatusOK, &raw)
}

// TestLearningJobRetries: a distillation whose model call fails is retried
// by the job engine (as after a crash) and then saves its insight, once;
// the queue shows the job by run, without the run's input.
func TestLearningJobRetries(t *testing.T) {
	t.Parallel()
	script := fake.New(
		fake.Step{Match: answers("secret refunds?"), Content: "90 days."},
		fake.Step{Match: distils("secret refunds?"), Err: errors.New("model down")},
		fake.Step{Match: distils("secret refunds?"), Content: `["` + insightPayments + `"]`},
	)
	ts := startServer(t, withKeys(keys), withProvider("anthropic", script), withSpecs(learningSpecs("always")))
	var run runJSON
	ts.json(http.MethodPost, "/agents/student/runs", aliceKey, `{"message":"secret refunds?","stream":false}`, http.StatusOK, &run)
	d := waitLearnings(t, ts, 1)[0]
	require.Equal(t, run.RunID, d.Metadata["run_id"])

	var l jobList
	require.Eventually(t, func() bool {
		status, body, _ := ts.do(http.MethodGet, "/queue/jobs?kind=learning_distil", adminKey, "", "")
		require.Equal(t, http.StatusOK, status, body)
		require.NotContains(t, body, "secret refunds")
		require.NoError(t, json.Unmarshal([]byte(body), &l))
		return len(l.Data) == 1 && l.Data[0].State == "completed"
	}, 15*time.Second, 20*time.Millisecond)
	j := l.Data[0]
	require.Equal(t, 2, j.Attempt)
	require.Len(t, j.Errors, 1)
	require.Contains(t, j.Errors[0]["error"], "model down")
	require.Equal(t, map[string]string{"run_id": run.RunID, "agent": "student"}, j.Summary)
	require.Len(t, learnings(t, ts), 1)
}

// BenchmarkLearningOverhead measures what learning (mode always) adds to a
// run's latency as its client sees it: the distillation job is queued as
// the run finishes and runs in the background (its model answers [] at
// once, so no document is written). Runs are sequential, off then on.
func BenchmarkLearningOverhead(b *testing.B) {
	specs := learningSpecs("always") + "---\nkind: Agent\nname: plain\nmodel: scripted\nhistory: 0\n"
	for _, agent := range []string{"plain", "student"} {
		b.Run(agent, func(b *testing.B) {
			script := fake.New()
			script.Repeat = &fake.Step{Content: "[]"}
			ts := startServer(b, withProvider("anthropic", script), withSpecs(specs))
			client := benchClient(1)
			url := ts.url + "/agents/" + agent + "/runs"
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range b.N {
				d, _, err := postRun(client, url, `{"message":"hi","stream":false}`)
				if err != nil {
					b.Fatal(err)
				}
				lat[i] = d
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		})
	}
}

// TestTeamLearning: a team with learning (mode always, its own distilling
// model) saves the insights of its runs, linked to the team's run.
func TestTeamLearning(t *testing.T) {
	t.Parallel()
	specs := learningSpecs("always") + `---
kind: Agent
name: plain
model: scripted
history: 0
---
kind: Team
name: tutors
mode: route
model: echo
members: [plain]
history: 0
learning: {knowledge: lessons, model: scripted}
`
	script := fake.New(
		fake.Step{Match: distils("team refunds?"), Content: `[{"text":"` + insightPayments + `"}]`},
		fake.Step{Match: func(r *model.Request) bool { return r.System != learning.DefaultPrompt }, Content: "Refunds older than 90 days fail."},
	)
	ts := startServer(t, withKeys(keys), withProvider("anthropic", script), withSpecs(specs))
	var run runJSON
	ts.json(http.MethodPost, "/teams/tutors/runs", aliceKey, `{"message":"team refunds?","stream":false}`, http.StatusOK, &run)
	d := waitLearnings(t, ts, 1)[0]
	require.Equal(t, run.RunID, d.Metadata["run_id"])
	require.Equal(t, "tutors", d.Metadata["team"])
	require.Nil(t, d.Metadata["agent"])
	require.Equal(t, "alice", d.Metadata["user_id"])
}

// TestLearningCountsAgainstBudgets: a distillation's tokens count against
// the agent's budgets and in the spend of the run it distilled; with the
// budget spent by the run itself, the distillation is skipped (the model
// is not asked), not retried.
func TestLearningCountsAgainstBudgets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		limit     int
		learned   int
		usage     int
		distilled bool
	}{
		{"within", 100, 1, 10 + 40, true},
		{"spent", 10, 0, 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := fake.New(
				fake.Step{Match: answers("how do refunds work?"), Content: "90 days.", Usage: model.Usage{InputTokens: 5, OutputTokens: 5}},
				fake.Step{Match: distils("how do refunds work?"), Content: `[{"text": "` + insightPayments + `"}]`, Usage: model.Usage{InputTokens: 30, OutputTokens: 10}},
			)
			specs := strings.Replace(learningSpecs("always"), "learning: {", "budgets: [pot]\nlearning: {", 1) +
				fmt.Sprintf("---\nkind: Budget\nname: pot\nlimits: {tokens: %d}\n", tc.limit)
			ts := startServer(t, withProvider("anthropic", script), withSpecs(specs))
			ts.json(http.MethodPost, "/agents/student/runs", "", `{"message":"how do refunds work?","stream":false}`, http.StatusOK, nil)
			waitJobsIdle(t, ts)
			if tc.learned > 0 {
				waitLearnings(t, ts, tc.learned)
			}
			require.Len(t, learnings(t, ts), tc.learned)
			asked := false
			for _, r := range script.Requests() {
				asked = asked || distils("how do refunds work?")(&r)
			}
			require.Equal(t, tc.distilled, asked)

			var b struct {
				Usage []struct {
					Tokens int `json:"tokens"`
				} `json:"usage"`
			}
			ts.json(http.MethodGet, "/budgets/pot", "", "", http.StatusOK, &b)
			require.Len(t, b.Usage, 1)
			require.Equal(t, tc.usage, b.Usage[0].Tokens)
			spend, err := ts.db.SpendTotal(t.Context(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour), store.Filter{})
			require.NoError(t, err)
			require.Equal(t, int64(tc.usage), spend.Tokens)
		})
	}
}
