package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

type memoryJSON struct {
	MemoryID  string   `json:"memory_id"`
	Memory    string   `json:"memory"`
	Topics    []string `json:"topics"`
	AgentID   string   `json:"agent_id"`
	TeamID    string   `json:"team_id"`
	UserID    string   `json:"user_id"`
	UpdatedAt string   `json:"updated_at"`
}

type memoryPage struct {
	Data []memoryJSON `json:"data"`
	Meta struct {
		Page       int `json:"page"`
		Limit      int `json:"limit"`
		TotalPages int `json:"total_pages"`
		TotalCount int `json:"total_count"`
	} `json:"meta"`
}

type statsPage struct {
	Data []struct {
		UserID              string `json:"user_id"`
		TotalMemories       int    `json:"total_memories"`
		LastMemoryUpdatedAt string `json:"last_memory_updated_at"`
	} `json:"data"`
	Meta struct {
		TotalCount int `json:"total_count"`
	} `json:"meta"`
}

func (ts *testServer) addMemory(key, body string) memoryJSON {
	var m memoryJSON
	ts.json(http.MethodPost, "/memories", key, body, http.StatusCreated, &m)
	return m
}

func memoryTexts(p memoryPage) []string {
	out := []string{}
	for _, m := range p.Data {
		out = append(out, m.Memory)
	}
	return out
}

// TestMemoriesAPI: the AgentOS memory routes, for a key bound to a user.
func TestMemoriesAPI(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	a1 := ts.addMemory(aliceKey, `{"memory":"Alice prefers aisle seats","topics":["Travel","preferences"]}`)
	require.Equal(t, "alice", a1.UserID)
	require.Equal(t, []string{"travel", "preferences"}, a1.Topics)
	require.NotEmpty(t, a1.MemoryID)
	require.NotEmpty(t, a1.UpdatedAt)
	ts.addMemory(aliceKey, `{"memory":"Alice is vegetarian","topics":["food"],"agent_id":"chef"}`)
	ts.addMemory(aliceKey, `{"memory":"Alice's daughter is called Maya","topics":["family"],"team_id":"crew"}`)

	list := func(query string) memoryPage {
		var p memoryPage
		ts.json(http.MethodGet, "/memories?"+query, aliceKey, "", http.StatusOK, &p)
		return p
	}
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"all, newest first", "", []string{"Alice's daughter is called Maya", "Alice is vegetarian", "Alice prefers aisle seats"}},
		{"agent", "agent_id=chef", []string{"Alice is vegetarian"}},
		{"team", "team_id=crew", []string{"Alice's daughter is called Maya"}},
		{"topics", "topics=preferences,travel", []string{"Alice prefers aisle seats"}},
		{"topics repeated", "topics=travel&topics=food", []string{}},
		{"search", "search_content=VEGETARIAN", []string{"Alice is vegetarian"}},
		{"sort", "sort_by=memory&sort_order=asc", []string{"Alice is vegetarian", "Alice prefers aisle seats", "Alice's daughter is called Maya"}},
		{"page", "limit=2&page=2", []string{"Alice prefers aisle seats"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, memoryTexts(list(tc.query)))
		})
	}
	p := list("limit=2")
	require.Equal(t, 3, p.Meta.TotalCount)
	require.Equal(t, 2, p.Meta.TotalPages)

	var got memoryJSON
	ts.json(http.MethodGet, "/memories/"+a1.MemoryID, aliceKey, "", http.StatusOK, &got)
	require.Equal(t, a1, got)
	ts.json(http.MethodPatch, "/memories/"+a1.MemoryID, aliceKey, `{"memory":"Alice prefers window seats"}`, http.StatusOK, &got)
	require.Equal(t, "Alice prefers window seats", got.Memory)
	require.Equal(t, a1.Topics, got.Topics, "absent fields stay")

	var topics []string
	ts.json(http.MethodGet, "/memory_topics", aliceKey, "", http.StatusOK, &topics)
	require.Equal(t, []string{"family", "food", "preferences", "travel"}, topics)
	var stats statsPage
	ts.json(http.MethodGet, "/user_memory_stats", aliceKey, "", http.StatusOK, &stats)
	require.Len(t, stats.Data, 1)
	require.Equal(t, "alice", stats.Data[0].UserID)
	require.Equal(t, 3, stats.Data[0].TotalMemories)

	ts.json(http.MethodDelete, "/memories/"+a1.MemoryID, aliceKey, "", http.StatusNoContent, nil)
	ts.json(http.MethodGet, "/memories/"+a1.MemoryID, aliceKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodDelete, "/memories/"+a1.MemoryID, aliceKey, "", http.StatusNotFound, nil)
	rest := list("")
	ids, _ := json.Marshal(map[string]any{"memory_ids": []string{rest.Data[0].MemoryID, rest.Data[1].MemoryID}})
	ts.json(http.MethodDelete, "/memories", aliceKey, string(ids), http.StatusNoContent, nil)
	require.Empty(t, list("").Data)

	for _, bad := range []struct{ method, path, body string }{
		{http.MethodPost, "/memories", `{"memory":"  "}`},
		{http.MethodPost, "/memories", `{"memory":"x","topics":["a,b"]}`},
		{http.MethodGet, "/memories?sort_by=user_id", ""},
		{http.MethodGet, "/memories?limit=0", ""},
		{http.MethodDelete, "/memories", `{"memory_ids":[]}`},
	} {
		status, body, _ := ts.do(bad.method, bad.path, aliceKey, "application/json", bad.body)
		require.Equal(t, http.StatusUnprocessableEntity, status, "%v: %s", bad, body)
	}
	// An unbound key must say whose memory it creates.
	ts.json(http.MethodPost, "/memories", adminKey, `{"memory":"x"}`, http.StatusUnprocessableEntity, nil)
	c := ts.addMemory(adminKey, `{"memory":"Carol likes tea","user_id":"carol"}`)
	require.Equal(t, "carol", c.UserID)
}

// TestMemoriesIsolation: a key bound to bob never reads, lists, searches,
// counts, changes or deletes alice's memories, on any route, whatever
// user_id it sends; a foreign id answers 404, as an unknown one does.
func TestMemoriesIsolation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	a := ts.addMemory(aliceKey, `{"memory":"Alice's PIN hint is her cat's name","topics":["secrets"]}`)
	// Bob cannot create a memory for alice: it becomes his own.
	forged := ts.addMemory(bobKey, `{"memory":"Bob wrote this","user_id":"alice","topics":["bob"]}`)
	require.Equal(t, "bob", forged.UserID)

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"Bob wrote this"}},
		{"user_id=alice", []string{"Bob wrote this"}},
		{"search_content=PIN", []string{}},
		{"user_id=alice&search_content=PIN", []string{}},
		{"topics=secrets", []string{}},
		{"user_id=alice&topics=secrets", []string{}},
	} {
		var p memoryPage
		ts.json(http.MethodGet, "/memories?"+tc.query, bobKey, "", http.StatusOK, &p)
		require.Equal(t, tc.want, memoryTexts(p), tc.query)
		require.Equal(t, len(tc.want), p.Meta.TotalCount, tc.query)
	}
	for _, path := range []string{"/memories/" + a.MemoryID, "/memories/" + a.MemoryID + "?user_id=alice", "/memories/no-such-id"} {
		status, body, _ := ts.do(http.MethodGet, path, bobKey, "", "")
		require.Equal(t, http.StatusNotFound, status, path)
		require.JSONEq(t, `{"detail":"memory not found"}`, body, "the same answer for a foreign id as for an unknown one")
	}
	status, body, _ := ts.do(http.MethodPatch, "/memories/"+a.MemoryID, bobKey, "application/json", `{"memory":"hacked","user_id":"alice"}`)
	require.Equal(t, http.StatusNotFound, status, body)
	ts.json(http.MethodDelete, "/memories/"+a.MemoryID+"?user_id=alice", bobKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodDelete, "/memories", bobKey, `{"memory_ids":["`+a.MemoryID+`"],"user_id":"alice"}`, http.StatusNoContent, nil)

	var topics []string
	ts.json(http.MethodGet, "/memory_topics?user_id=alice", bobKey, "", http.StatusOK, &topics)
	require.Equal(t, []string{"bob"}, topics)
	var stats statsPage
	ts.json(http.MethodGet, "/user_memory_stats?user_id=alice", bobKey, "", http.StatusOK, &stats)
	require.Len(t, stats.Data, 1)
	require.Equal(t, "bob", stats.Data[0].UserID)
	require.Equal(t, 1, stats.Meta.TotalCount)

	// Alice's memory is untouched, and Recall for bob never returns it.
	var got memoryJSON
	ts.json(http.MethodGet, "/memories/"+a.MemoryID, aliceKey, "", http.StatusOK, &got)
	require.Equal(t, a, got)
	recalled, err := ts.memories.Recall(t.Context(), "bob", "", "what is the PIN hint, the cat's name?", 5)
	require.NoError(t, err)
	for _, m := range recalled {
		require.Equal(t, "bob", m.UserID)
	}
	// An unbound admin key sees every user's, and filters by user_id.
	var p memoryPage
	ts.json(http.MethodGet, "/memories?user_id=alice", adminKey, "", http.StatusOK, &p)
	require.Equal(t, []string{a.Memory}, memoryTexts(p))
	ts.json(http.MethodGet, "/user_memory_stats", adminKey, "", http.StatusOK, &stats)
	require.Equal(t, 2, stats.Meta.TotalCount)
	ts.json(http.MethodGet, "/memories/"+url.PathEscape(a.MemoryID), adminKey, "", http.StatusOK, &got)
	require.Equal(t, "alice", got.UserID)
}
