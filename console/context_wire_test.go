package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/session"
)

// wireTurn is what one answering request carried on the OpenAI wire: its
// system message and the messages after it ("role: content").
type wireTurn struct {
	system string
	msgs   []string
}

// answering returns the vendor requests that answered msg: the ones whose
// system message carries the user's memories (the summarizer's and the
// extraction's do not) and whose last message holds msg.
func answering(ts *testServer, msg string) []wireTurn {
	var out []wireTurn
	for _, r := range ts.v.requests() {
		if len(r.Messages) < 2 || r.Messages[0].Role != "system" {
			continue
		}
		w := wireTurn{system: text(r.Messages[0].Content)}
		for _, m := range r.Messages[1:] {
			w.msgs = append(w.msgs, m.Role+": "+text(m.Content))
		}
		if strings.Contains(w.system, "<user_memories>\n") && strings.Contains(text(r.Messages[len(r.Messages)-1].Content), msg) {
			out = append(out, w)
		}
	}
	return out
}

// TestContextOnTheWire: what an agent and a team's leader send on the
// OpenAI wire on each turn of a session with everything on — the session
// state, the session's summary, the user's memories, then the history
// after the summary — exactly, in that order. The fake vendor answers with
// a description of what it received, so answers and the summary it writes
// are known only at run time: each turn's expected request is built from
// the stored summary, the memories recalled for its message and the
// earlier answers, through the formatters the engine uses.
func TestContextOnTheWire(t *testing.T) {
	t.Parallel()
	const common = "session_state: true\nhistory: 5\nmemory: {mode: automatic, recall: 2}\nsummary: {model: vendor, threshold_tokens: 150, keep_runs: 1}\n"
	for _, tc := range []struct {
		name, path, specs string
		// agent: the whole system message is known; team: the leader's
		// instructions come first (roster and mode), then the sections.
		exact bool
	}{
		{"agent", "/agents/wired/runs", "kind: Agent\nname: wired\nmodel: vendor\ninstructions: Be brief.\n" + common, true},
		{"team", "/teams/wired-crew/runs",
			"kind: Agent\nname: wired-member\ndescription: Answers.\nmodel: vendor\ninstructions: Member.\nhistory: 0\n---\n" +
				"kind: Team\nname: wired-crew\nmode: broadcast\nmodel: vendor\nmembers: [wired-member]\ninstructions: Lead.\n" + common, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, withSpecs(tc.specs))
			for _, m := range []string{`{"memory":"Lives in Lisbon","topics":["home"],"user_id":"u1"}`,
				`{"memory":"Drinks green tea","topics":["drinks"],"user_id":"u1"}`, `{"memory":"Bob's secret","user_id":"bob"}`} {
				ts.json(http.MethodPost, "/memories", "", m, http.StatusCreated, nil)
			}
			turns := []string{"where do I live?", "what do I drink?", "and my city again?", "thanks, that is all"}
			sessionID := ""
			var answers, runIDs []string
			summarized := false
			for i, msg := range turns {
				// What the turn is given, read before it runs: the summary
				// so far and the user's memories for its message.
				var sess struct {
					Summary *session.Summary `json:"session_summary"`
				}
				body := fmt.Sprintf(`{"message":%q,"stream":false,"user_id":"u1","session_state":{"turn":%d}}`, msg, i+1)
				through := ""
				if sessionID != "" {
					ts.json(http.MethodGet, "/sessions/"+sessionID, "", "", http.StatusOK, &sess)
					// The fold point is the store's (the API shows only
					// AgentOS's fields).
					stored, err := ts.db.SessionSummary(t.Context(), sessionID)
					require.NoError(t, err)
					if stored != nil {
						through = stored.Through.RunID
					}
					body = fmt.Sprintf(`{"message":%q,"stream":false,"user_id":"u1","session_id":%q,"session_state":{"turn":%d}}`, msg, sessionID, i+1)
				}
				recalled, err := ts.memories.Recall(t.Context(), "u1", "", msg, 2)
				require.NoError(t, err)
				require.Len(t, recalled, 2)

				var run runJSON
				ts.json(http.MethodPost, tc.path, "", body, http.StatusOK, &run)
				require.Equal(t, "COMPLETED", run.Status)
				sessionID = run.SessionID
				waitJobsIdle(t, ts)

				sections := []string{fmt.Sprintf("The session state (JSON; read it with get_state, change it with set_state):\n{\"turn\":%d}", i+1)}
				if sess.Summary != nil {
					summarized = true
					sections = append(sections, session.SummaryPrompt(sess.Summary))
				}
				sections = append(sections, session.MemoryPrompt(recalled, false))
				reqs := answering(ts, msg)
				require.Len(t, reqs, 1, "turn %d: one answering request", i+1)
				got := reqs[0]
				if tc.exact {
					require.Equal(t, strings.Join(append([]string{"Be brief."}, sections...), "\n\n"), got.system, "turn %d: the system message", i+1)
				} else {
					require.True(t, strings.HasSuffix(got.system, "\n\n"+strings.Join(sections, "\n\n")), "turn %d: the leader's system message ends with the sections:\n%s", i+1, got.system)
				}
				require.NotContains(t, got.system, "Bob's secret")

				// The history: the runs after the summary's fold point, each
				// the user's message and the answer; then this turn's message.
				first := 0
				for j, id := range runIDs {
					if id == through {
						first = j + 1
					}
				}
				history := []string{}
				for j := first; j < i; j++ {
					history = append(history, "user: "+turns[j], "assistant: "+answers[j])
				}
				require.Equal(t, history, got.msgs[:len(got.msgs)-1], "turn %d: the history", i+1)
				answers, runIDs = append(answers, run.Content), append(runIDs, run.RunID)
			}
			require.True(t, summarized, "a later turn was given the session's summary")
		})
	}
}
