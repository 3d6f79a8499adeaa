package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/engine/memory/extract"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/session"
)

// memModels adds the extracting model (its own fake provider, so the
// agent's script is not consumed by background jobs).
const memModels = historyModels + "kind: Model\nname: extractor\nprovider: anthropic\nmodel: extractor\napi_key: sk-test\n---\n"

// modelRouter sends each request to the provider of its model id, so
// that background extraction and runs follow their own scripts.
type modelRouter map[string]model.Provider

func (b modelRouter) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	return b[req.Model].Generate(ctx, req, onDelta)
}

// seedMemories adds memories of user, oldest first, and returns them.
func seedMemories(t *testing.T, ts *testServer, user string, texts ...string) []memory.Memory {
	t.Helper()
	var out []memory.Memory
	for _, s := range texts {
		m, err := ts.memories.Add(t.Context(), &memory.Memory{UserID: user, Memory: s, Topics: []string{"seed"}})
		require.NoError(t, err)
		out = append(out, *m)
	}
	return out
}

// userMemories lists user's memories' texts, sorted.
func userMemories(t *testing.T, ts *testServer, user string) []string {
	t.Helper()
	ms, _, err := ts.memories.List(t.Context(), memory.Query{UserID: user, Limit: 100, SortBy: memory.SortMemory, SortOrder: "asc"})
	require.NoError(t, err)
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Memory)
	}
	return out
}

// TestAgentMemoriesAutomatic: a run of alice gets her most relevant
// memories in its instructions (exactly, most relevant first); after the run
// a background job asks the extracting model for operations, applies them
// as alice's, and a run in another session receives the new memory; bob's
// and anonymous runs never receive alice's memories.
func TestAgentMemoriesAutomatic(t *testing.T) {
	t.Parallel()
	agent := fake.New()
	agent.Repeat = &fake.Step{Content: "ok"}
	extractor := fake.New(fake.Step{Content: "```json\n[{\"op\":\"add\",\"memory\":\"The user likes mushrooms.\",\"topics\":[\"Food\"]}]\n```"})
	extractor.Repeat = &fake.Step{Content: "[]"}
	specs := memModels + "kind: Agent\nname: chef\nmodel: scripted\ninstructions: You cook.\nhistory: 0\nmemory: {mode: automatic, recall: 2, model: extractor}\n"
	ts := startServer(t, withKeys(keys), withProvider("anthropic", modelRouter{"scripted": agent, "extractor": extractor}), withSpecs(specs))
	seeded := seedMemories(t, ts, "alice", "The user lives in Lyon.", "The user is vegetarian and cooks dinner every evening.", "The user's dog is called Rex.")
	bobs := seedMemories(t, ts, "bob", "Bob's vault code is 1234.")

	const msg = "What vegetarian dinner should I cook?"
	var run runJSON
	ts.json(http.MethodPost, "/agents/chef/runs", aliceKey, `{"message":"`+msg+`","stream":false}`, http.StatusOK, &run)
	want, err := ts.memories.Recall(t.Context(), "alice", "", msg, 2)
	require.NoError(t, err)
	require.Len(t, want, 2)
	require.Equal(t, seeded[1].ID, want[0].ID, "the most relevant memory comes first")
	require.Equal(t, "You cook.\n\n<user_memories>\nWhat you remember about the user from earlier conversations, most relevant first; use it when it helps:\n"+
		"- "+want[0].Memory+" (topics: seed)\n- "+want[1].Memory+" (topics: seed)\n</user_memories>", agent.Requests()[0].System)

	// The job extracts, as alice's, what the extracting model answered.
	require.Eventually(t, func() bool { return len(userMemories(t, ts, "alice")) == 4 }, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, userMemories(t, ts, "alice"), "The user likes mushrooms.")
	ereqs := extractor.Requests()
	require.Equal(t, extract.DefaultPrompt+"\n\n"+`Answer with a JSON list only, no prose: [{"op": "add", "memory": "...", "topics": ["..."]}, {"op": "update", "id": "<memory id>", "memory": "...", "topics": ["..."]}, {"op": "delete", "id": "<memory id>"}]. Answer [] when nothing changes.`, ereqs[0].System)
	existing, err := ts.memories.Recall(t.Context(), "alice", "", msg, 20)
	require.NoError(t, err)
	existing = slicesWithout(existing, "The user likes mushrooms.")
	require.Equal(t, extract.Transcript(existing, extract.Args{Input: msg, Answer: "ok"}), ereqs[0].Messages[0].Content)
	require.True(t, strings.HasSuffix(ereqs[0].Messages[0].Content, "User message:\n"+msg+"\n\nAssistant's answer:\nok"))

	// A later session's run receives it.
	ts.json(http.MethodPost, "/agents/chef/runs", aliceKey, `{"message":"any mushrooms recipe?","stream":false}`, http.StatusOK, nil)
	require.Contains(t, agent.Requests()[1].System, "- The user likes mushrooms. (topics: food)\n")

	// Bob's runs get his memories only; an anonymous run gets none (and no
	// extraction runs for it).
	ts.json(http.MethodPost, "/agents/chef/runs", bobKey, `{"message":"`+msg+`","stream":false}`, http.StatusOK, nil)
	bobSys := agent.Requests()[2].System
	require.Equal(t, "You cook.\n\n<user_memories>\nWhat you remember about the user from earlier conversations, most relevant first; use it when it helps:\n- "+bobs[0].Memory+" (topics: seed)\n</user_memories>", bobSys)
	ts.json(http.MethodPost, "/agents/chef/runs", adminKey, `{"message":"`+msg+`","stream":false}`, http.StatusOK, nil)
	require.Equal(t, "You cook.", agent.Requests()[3].System)
	require.Eventually(t, func() bool { return len(extractor.Requests()) == 3 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, extractor.Requests(), 3, "alice twice and bob once; the anonymous run queues nothing")
	// Alice's second extraction and bob's run in either order: bob's is the
	// one shown his memories, and it is never shown hers.
	bobsExtractions := 0
	for _, r := range extractor.Requests()[1:] {
		if strings.Contains(r.Messages[0].Content, "Bob's vault code") {
			bobsExtractions++
			require.NotContains(t, r.Messages[0].Content, "Lyon", "bob's extraction never sees alice's memories")
		} else {
			require.NotContains(t, r.Messages[0].Content, "Bob's vault code", "alice's extraction never sees bob's memories")
		}
	}
	require.Equal(t, 1, bobsExtractions)
	require.Equal(t, []string{"Bob's vault code is 1234."}, userMemories(t, ts, "bob"))

	// Deleting alice erases her memories.
	ts.json(http.MethodDelete, "/users/alice", adminKey, "", http.StatusOK, nil)
	require.Empty(t, userMemories(t, ts, "alice"))
	require.Equal(t, []string{"Bob's vault code is 1234."}, userMemories(t, ts, "bob"))
}

func slicesWithout(ms []memory.Memory, text string) []memory.Memory {
	out := ms[:0:0]
	for _, m := range ms {
		if m.Memory != text {
			out = append(out, m)
		}
	}
	return out
}

const (
	bobMemoryID   = "01900000-0000-7000-8000-000000000b0b"
	aliceMemoryID = "01900000-0000-7000-8000-000000000a1e"
)

func toolCall(id, name, args string) fake.Step {
	return fake.Step{ToolCalls: []model.ToolCall{{ID: id, Name: name, Arguments: args}}}
}

// TestAgentMemoryTools: with memory: agentic the model gets remember,
// forget and recall, which act on the run's user only: alice's model
// remembers, recalls only hers, cannot forget bob's memory by its id, and
// forgets her own.
func TestAgentMemoryTools(t *testing.T) {
	t.Parallel()
	agent := fake.New(
		toolCall("c1", "remember", `{"memory":"The user plays chess on Sundays.","topics":["Games"]}`), fake.Step{Content: "noted"},
		toolCall("c2", "recall", `{"query":"vault code chess"}`), fake.Step{Content: "found"},
		toolCall("c3", "forget", `{"memory_id":"`+bobMemoryID+`"}`), fake.Step{Content: "could not"},
		toolCall("c4", "forget", `{"memory_id":"`+aliceMemoryID+`"}`), fake.Step{Content: "forgotten"},
		toolCall("c5", "remember", `{"memory":"x"}`), fake.Step{Content: "no"},
	)
	ts := startServer(t, withKeys(keys), withProvider("anthropic", agent),
		withSpecs(memModels+"kind: Agent\nname: pal\nmodel: scripted\nhistory: 0\nmemory: agentic\n"))
	// Bob's memory, with an id alice's model knows.
	bob := memory.Memory{ID: bobMemoryID, UserID: "bob", Memory: "Bob's vault code is 1234.", Topics: []string{}, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	require.NoError(t, ts.db.CreateMemory(t.Context(), &bob))

	ts.json(http.MethodPost, "/agents/pal/runs", aliceKey, `{"message":"I play chess on Sundays","stream":false}`, http.StatusOK, nil)
	reqs := agent.Requests()
	var names []string
	for _, d := range reqs[0].Tools {
		names = append(names, d.Name)
	}
	require.Equal(t, []string{"remember", "forget", "recall"}, names)
	require.Empty(t, reqs[0].System, "no memories yet")
	require.Regexp(t, `^Remembered \(memory_id [0-9a-f-]{36}\)\.$`, reqs[1].Messages[2].Content)
	alices, _, err := ts.memories.List(t.Context(), memory.Query{UserID: "alice"})
	require.NoError(t, err)
	require.Len(t, alices, 1)
	chess := alices[0]
	require.Equal(t, []string{"games"}, chess.Topics)
	require.NotEmpty(t, chess.RunID)

	// Recall returns alice's only, whatever the query; the context shows
	// her memory with its id.
	ts.json(http.MethodPost, "/agents/pal/runs", aliceKey, `{"message":"what is my vault code?","stream":false}`, http.StatusOK, nil)
	reqs = agent.Requests()
	require.Equal(t, "<user_memories>\nWhat you remember about the user from earlier conversations, most relevant first; use it when it helps:\n- ["+chess.ID+"] The user plays chess on Sundays. (topics: games)\n</user_memories>", reqs[2].System)
	var hits []map[string]any
	require.NoError(t, json.Unmarshal([]byte(reqs[3].Messages[2].Content), &hits))
	require.Equal(t, []map[string]any{{"memory_id": chess.ID, "memory": "The user plays chess on Sundays.", "topics": []any{"games"}}}, hits)

	// Forgetting bob's memory by its id fails as unknown; bob keeps it.
	ts.json(http.MethodPost, "/agents/pal/runs", aliceKey, `{"message":"forget the vault code","stream":false}`, http.StatusOK, nil)
	res := agent.Requests()[5].Messages[2]
	require.True(t, res.IsError)
	require.Contains(t, res.Content, "the user has no memory "+bobMemoryID)
	require.Equal(t, []string{"Bob's vault code is 1234."}, userMemories(t, ts, "bob"))

	// Forgetting her own works.
	own := memory.Memory{ID: aliceMemoryID, UserID: "alice", Memory: "The user's dentist is on Monday.", Topics: []string{}, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	require.NoError(t, ts.db.CreateMemory(t.Context(), &own))
	ts.json(http.MethodPost, "/agents/pal/runs", aliceKey, `{"message":"forget chess","stream":false}`, http.StatusOK, nil)
	require.Equal(t, "Forgotten.", agent.Requests()[7].Messages[2].Content)
	require.Equal(t, []string{"The user plays chess on Sundays."}, userMemories(t, ts, "alice"))

	// Without a user the tools refuse.
	ts.json(http.MethodPost, "/agents/pal/runs", adminKey, `{"message":"remember x","stream":false}`, http.StatusOK, nil)
	res = agent.Requests()[9].Messages[2]
	require.True(t, res.IsError)
	require.Contains(t, res.Content, "memories belong to a user: the caller must send a user_id with the run")
}

// TestTeamMemories: a team's leader gets the user's memories in its
// instructions (route and coordinate), with the memory tools when agentic;
// members get their task without them; bob's team runs get none of alice's.
func TestTeamMemories(t *testing.T) {
	t.Parallel()
	route := toolCall("r", "route_to_member", `{"member":"mm-helper"}`)
	delegate := toolCall("d", "delegate_task_to_member", `{"member":"mm-helper","task":"do it"}`)
	section := func(ms ...memory.Memory) string {
		return session.MemoryPrompt(ms, false)
	}
	for _, tc := range []struct {
		mode, memory string
		leader       []fake.Step
		tools        []string
		withIDs      bool
	}{
		{"route", "{mode: automatic, model: extractor}", []fake.Step{route, route}, []string{"route_to_member"}, false},
		{"coordinate", "agentic", []fake.Step{delegate, {Content: "done"}, delegate, {Content: "done"}}, []string{"delegate_task_to_member", "remember", "forget", "recall"}, true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			leader := fake.New(tc.leader...)
			members := fake.New()
			members.Repeat = &fake.Step{Content: "helped"}
			extractor := fake.New()
			extractor.Repeat = &fake.Step{Content: "[]"}
			specs := memModels + "kind: Agent\nname: mm-helper\ndescription: Helps.\nmodel: scripted\nhistory: 0\n---\n" +
				"kind: Team\nname: mm-crew\nmode: " + tc.mode + "\nmodel: lead\nmembers: [mm-helper]\nhistory: 0\nmemory: " + tc.memory + "\n"
			ts := startServer(t, withKeys(keys), withProvider("ollama", leader), withProvider("anthropic", modelRouter{"scripted": members, "extractor": extractor}), withSpecs(specs))
			alice := seedMemories(t, ts, "alice", "The user prefers short answers.")
			ts.json(http.MethodPost, "/teams/mm-crew/runs", aliceKey, `{"message":"help me","stream":false}`, http.StatusOK, nil)
			ts.json(http.MethodPost, "/teams/mm-crew/runs", bobKey, `{"message":"help me","stream":false}`, http.StatusOK, nil)
			reqs := leader.Requests()
			first := reqs[0]
			want := section(alice...)
			if tc.withIDs {
				want = session.MemoryPrompt(alice, true)
			}
			require.True(t, strings.HasSuffix(first.System, "\n\n"+want), first.System)
			var names []string
			for _, d := range first.Tools {
				names = append(names, d.Name)
			}
			require.Equal(t, tc.tools, names)
			for _, r := range reqs[len(reqs)/2:] {
				require.NotContains(t, r.System, "user_memories", "bob has no memories")
			}
			for _, r := range members.Requests() {
				require.NotContains(t, r.System, "short answers", "members get no memories")
			}
		})
	}
}
