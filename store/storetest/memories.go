package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/memory"
)

func testMemories(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	add := func(id, user, agent, team, text string, sec int, topics ...string) memory.Memory {
		m := memory.Memory{ID: id, UserID: user, AgentID: agent, TeamID: team, Memory: text, Topics: topics,
			Input: "said: " + text, RunID: "r-" + id, SessionID: "s-" + id, CreatedAt: at(sec), UpdatedAt: at(sec)}
		require.NoError(t, db.CreateMemory(ctx, &m))
		if m.Topics == nil {
			m.Topics = []string{}
		}
		return m
	}
	m1 := add("m1", "alice", "helper", "", "Alice prefers window seats on 100% of flights", 1, "travel", "preferences")
	m2 := add("m2", "alice", "", "crew", "Alice is allergic to peanuts", 2, "health")
	add("m3", "alice", "helper", "", "alice's dog is called Biscuit", 3, "pets", "preferences")
	b1 := add("b1", "bob", "helper", "", "Bob lives in Lisbon", 4, "home")

	t.Run("get is constrained to the user", func(t *testing.T) {
		got, err := db.GetMemory(ctx, "alice", "m1")
		require.NoError(t, err)
		require.Equal(t, m1, *got)
		_, err = db.GetMemory(ctx, "bob", "m1")
		require.ErrorIs(t, err, memory.ErrNotFound)
		_, err = db.GetMemory(ctx, "alice", "nope")
		require.ErrorIs(t, err, memory.ErrNotFound)
		got, err = db.GetMemory(ctx, "", "m1") // not bound to a user: any user's
		require.NoError(t, err)
		require.Equal(t, m1, *got)
	})

	ids := func(ms []memory.Memory) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.ID
		}
		return out
	}
	t.Run("list filters, sorts and pages", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			q     memory.Query
			want  []string
			total int
		}{
			{"user, newest first", memory.Query{UserID: "alice"}, []string{"m3", "m2", "m1"}, 3},
			{"all users", memory.Query{}, []string{"b1", "m3", "m2", "m1"}, 4},
			{"agent", memory.Query{UserID: "alice", AgentID: "helper"}, []string{"m3", "m1"}, 2},
			{"team", memory.Query{TeamID: "crew"}, []string{"m2"}, 1},
			{"one topic", memory.Query{UserID: "alice", Topics: []string{"preferences"}}, []string{"m3", "m1"}, 2},
			{"every topic", memory.Query{Topics: []string{"Preferences", "pets"}}, []string{"m3"}, 1},
			{"topic is whole", memory.Query{Topics: []string{"pet"}}, []string{}, 0},
			{"search ignores case", memory.Query{Search: "ALICE"}, []string{"m3", "m2", "m1"}, 3},
			{"search is literal", memory.Query{Search: "100%"}, []string{"m1"}, 1},
			{"search is literal (underscore)", memory.Query{Search: "_"}, []string{}, 0},
			{"ids", memory.Query{UserID: "alice", IDs: []string{"m1", "b1"}}, []string{"m1"}, 1},
			{"sort by memory asc", memory.Query{UserID: "alice", SortBy: "memory", SortOrder: "asc"}, []string{"m2", "m1", "m3"}, 3},
			{"sort by created asc", memory.Query{SortBy: "created_at", SortOrder: "asc"}, []string{"m1", "m2", "m3", "b1"}, 4},
			{"page 2", memory.Query{Limit: 3, Page: 2}, []string{"m1"}, 4},
			{"page past the end", memory.Query{Limit: 3, Page: 3}, []string{}, 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, total, err := db.ListMemories(ctx, tc.q)
				require.NoError(t, err)
				require.Equal(t, tc.want, ids(got))
				require.Equal(t, tc.total, total)
			})
		}
		_, _, err := db.ListMemories(ctx, memory.Query{SortBy: "user_id"})
		require.ErrorIs(t, err, memory.ErrInvalid)
		_, _, err = db.ListMemories(ctx, memory.Query{SortOrder: "sideways"})
		require.ErrorIs(t, err, memory.ErrInvalid)
	})

	t.Run("topics, stats, counts", func(t *testing.T) {
		topics, err := db.MemoryTopics(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, []string{"health", "pets", "preferences", "travel"}, topics)
		topics, err = db.MemoryTopics(ctx, "bob")
		require.NoError(t, err)
		require.Equal(t, []string{"home"}, topics)
		topics, err = db.MemoryTopics(ctx, "")
		require.NoError(t, err)
		require.Len(t, topics, 5)

		stats, total, err := db.MemoryStats(ctx, "", 10, 1)
		require.NoError(t, err)
		require.Equal(t, 2, total)
		require.Equal(t, []memory.UserStats{
			{UserID: "bob", TotalMemories: 1, LastMemoryUpdatedAt: at(4)},
			{UserID: "alice", TotalMemories: 3, LastMemoryUpdatedAt: at(3)},
		}, stats)
		stats, total, err = db.MemoryStats(ctx, "alice", 10, 1)
		require.NoError(t, err)
		require.Equal(t, 1, total)
		require.Equal(t, []memory.UserStats{{UserID: "alice", TotalMemories: 3, LastMemoryUpdatedAt: at(3)}}, stats)
		stats, _, err = db.MemoryStats(ctx, "", 1, 2)
		require.NoError(t, err)
		require.Equal(t, "alice", stats[0].UserID)

		n, err := db.CountMemories(ctx, "alice", "")
		require.NoError(t, err)
		require.Equal(t, 3, n)
		n, err = db.CountMemories(ctx, "alice", "helper")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		oldest, err := db.OldestMemories(ctx, "alice", "", 2)
		require.NoError(t, err)
		require.Equal(t, []string{"m1", "m2"}, oldest)
		oldest, err = db.OldestMemories(ctx, "alice", "helper", 5)
		require.NoError(t, err)
		require.Equal(t, []string{"m1", "m3"}, oldest)

		st, err := db.MemoryIndexState(ctx)
		require.NoError(t, err)
		require.Equal(t, memory.IndexState{Count: 4, LastUpdatedAt: at(4)}, st)
		var all []string
		require.NoError(t, db.AllMemories(ctx, func(m memory.Memory) error { all = append(all, m.ID); return nil }))
		require.Equal(t, []string{"b1", "m1", "m2", "m3"}, all)
		byID, err := db.MemoriesByID(ctx, "bob", []string{"m1", "m2", "b1"})
		require.NoError(t, err)
		require.Equal(t, []memory.Memory{b1}, byID)
	})

	t.Run("update is constrained to the user", func(t *testing.T) {
		foreign := m2
		foreign.UserID, foreign.Memory = "bob", "stolen"
		require.ErrorIs(t, db.UpdateMemory(ctx, &foreign), memory.ErrNotFound)
		changed := m2
		changed.Memory, changed.Topics, changed.AgentID, changed.UpdatedAt = "Alice is allergic to peanuts and shellfish", []string{"health", "food"}, "helper", at(10)
		require.NoError(t, db.UpdateMemory(ctx, &changed))
		got, err := db.GetMemory(ctx, "alice", "m2")
		require.NoError(t, err)
		require.Equal(t, changed, *got)
	})

	t.Run("delete is constrained to the user", func(t *testing.T) {
		gone, err := db.DeleteMemories(ctx, "bob", []string{"m1", "m3", "nope"})
		require.NoError(t, err)
		require.Empty(t, gone)
		gone, err = db.DeleteMemories(ctx, "alice", []string{"m1", "b1"})
		require.NoError(t, err)
		require.Equal(t, []memory.Memory{m1}, gone)
		_, err = db.GetMemory(ctx, "bob", "b1")
		require.NoError(t, err)
		gone, err = db.DeleteUserMemories(ctx, "alice")
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"m2", "m3"}, ids(gone))
		n, err := db.CountMemories(ctx, "alice", "")
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = db.CountMemories(ctx, "bob", "")
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}
