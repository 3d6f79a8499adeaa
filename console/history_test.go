package console_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// historyModels are Model documents for the scripted providers: scripted
// (anthropic) for agents and members, lead (ollama) for team leaders.
const historyModels = "kind: Model\nname: scripted\nprovider: anthropic\nmodel: scripted\napi_key: sk-test\n---\n" +
	"kind: Model\nname: lead\nprovider: ollama\nmodel: lead\n---\n"

func user(s string) model.Message      { return model.Message{Role: model.RoleUser, Content: s} }
func assistant(s string) model.Message { return model.Message{Role: model.RoleAssistant, Content: s} }

// converse runs messages as consecutive turns of one session of path's
// runner and returns the session id.
func converse(t *testing.T, ts *testServer, path string, messages ...string) {
	t.Helper()
	sessionID := ""
	for _, m := range messages {
		body := fmt.Sprintf(`{"message":%q,"stream":false}`, m)
		if sessionID != "" {
			body = fmt.Sprintf(`{"message":%q,"stream":false,"session_id":%q}`, m, sessionID)
		}
		var out struct {
			SessionID string `json:"session_id"`
			Status    string `json:"status"`
		}
		ts.json(http.MethodPost, path, "", body, http.StatusOK, &out)
		require.Equal(t, "COMPLETED", out.Status, m)
		sessionID = out.SessionID
	}
}

// TestAgentHistory: what the model receives on each turn of a session, by
// the agent's history settings. Each turn's messages are 12 bytes ("question
// N?" 11, answers 8): a stored run estimates to 2*4+3+2 = 13 tokens.
func TestAgentHistory(t *testing.T) {
	t.Parallel()
	q1, q2, q3 := user("question 1?"), user("question 2?"), user("question 3?")
	a1, a2 := assistant("answer 1"), assistant("answer 2")
	for _, tc := range []struct {
		name, history string
		want          [][]model.Message
	}{
		{"default keeps the last runs", "", [][]model.Message{{q1}, {q1, a1, q2}, {q1, a1, q2, a2, q3}}},
		{"short form", "history: 1\n", [][]model.Message{{q1}, {q1, a1, q2}, {q2, a2, q3}}},
		{"zero turns it off", "history: 0\n", [][]model.Message{{q1}, {q2}, {q3}}},
		{"token budget drops the oldest whole runs", "history_tokens: 20\n", [][]model.Message{{q1}, {q1, a1, q2}, {q2, a2, q3}}},
		{"budget below one run keeps none", "history_tokens: 5\n", [][]model.Message{{q1}, {q2}, {q3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := fake.New(fake.Step{Content: "answer 1"}, fake.Step{Content: "answer 2"}, fake.Step{Content: "answer 3"})
			ts := startServer(t, withProvider("anthropic", script), withSpecs(historyModels+"kind: Agent\nname: talker\nmodel: scripted\n"+tc.history))
			converse(t, ts, "/agents/talker/runs", "question 1?", "question 2?", "question 3?")
			reqs := script.Requests()
			require.Len(t, reqs, 3)
			for i, want := range tc.want {
				require.Equal(t, want, reqs[i].Messages, "turn %d", i+1)
			}
		})
	}
}

// TestTeamHistory: a team's leader sees the session's earlier team turns
// (user message and team answer, never a coordinate leader's delegations);
// the routed member and broadcast members see them too, coordinate members
// only their task; history: 0 turns it off.
func TestTeamHistory(t *testing.T) {
	t.Parallel()
	route := func(n int) fake.Step {
		return fake.Step{ToolCalls: []model.ToolCall{{ID: fmt.Sprintf("r%d", n), Name: "route_to_member", Arguments: `{"member":"hist-helper"}`}}}
	}
	delegate := func(n int) fake.Step {
		return fake.Step{ToolCalls: []model.ToolCall{{ID: fmt.Sprintf("d%d", n), Name: "delegate_task_to_member", Arguments: fmt.Sprintf(`{"member":"hist-helper","task":"task %d"}`, n)}}}
	}
	q1, q2 := user("question 1?"), user("question 2?")
	m1 := assistant("member 1")
	synth := func(q string, n int) model.Message {
		return user(fmt.Sprintf("The user's message:\n%s\n\nYour team's answers:\n\n## hist-helper\nmember %d\n\nWrite the final answer for the user.", q, n))
	}
	for _, tc := range []struct {
		mode, history string
		leader        []fake.Step
		// leaderTurn2 is the leader's first request of turn 2; memberTurn2
		// the member's request of turn 2.
		leaderTurn2, memberTurn2 []model.Message
	}{
		{"route", "", []fake.Step{route(1), route(2)}, []model.Message{q1, m1, q2}, []model.Message{q1, m1, q2}},
		{"route", "history: 0\n", []fake.Step{route(1), route(2)}, []model.Message{q2}, []model.Message{q2}},
		{"broadcast", "", []fake.Step{{Content: "team 1"}, {Content: "team 2"}},
			[]model.Message{q1, assistant("team 1"), synth("question 2?", 2)}, []model.Message{q1, assistant("team 1"), q2}},
		{"broadcast", "history: 0\n", []fake.Step{{Content: "team 1"}, {Content: "team 2"}},
			[]model.Message{synth("question 2?", 2)}, []model.Message{q2}},
		{"coordinate", "", []fake.Step{delegate(1), {Content: "team 1"}, delegate(2), {Content: "team 2"}},
			[]model.Message{q1, assistant("team 1"), q2}, []model.Message{user("task 2")}},
		{"coordinate", "history: 0\n", []fake.Step{delegate(1), {Content: "team 1"}, delegate(2), {Content: "team 2"}},
			[]model.Message{q2}, []model.Message{user("task 2")}},
	} {
		t.Run(tc.mode+" "+tc.history, func(t *testing.T) {
			t.Parallel()
			leader := fake.New(tc.leader...)
			members := fake.New(fake.Step{Content: "member 1"}, fake.Step{Content: "member 2"})
			specs := historyModels + "kind: Agent\nname: hist-helper\ndescription: Helps.\nmodel: scripted\nhistory: 0\n---\n" +
				"kind: Team\nname: hist-crew\nmode: " + tc.mode + "\nmodel: lead\nmembers: [hist-helper]\n" + tc.history
			ts := startServer(t, withProvider("ollama", leader), withProvider("anthropic", members), withSpecs(specs))
			converse(t, ts, "/teams/hist-crew/runs", "question 1?", "question 2?")

			lreqs, mreqs := leader.Requests(), members.Requests()
			require.Len(t, lreqs, len(tc.leader))
			require.Len(t, mreqs, 2)
			require.Equal(t, tc.leaderTurn2, lreqs[len(tc.leader)/2].Messages, "leader, turn 2")
			require.Equal(t, tc.memberTurn2, mreqs[1].Messages, "member, turn 2")
		})
	}
}
