package memory_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/store"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	db    *store.DB
	vec   *embedded.Store
	svc   *memory.Service
	clock *clock
}

// newEnv builds a Service on a real SQLite store, the embedded vector store
// persisted in it and the local embedder: the default production stack.
func newEnv(t testing.TB, opts memory.Options) *env {
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "troupe.db"), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return newEnvOn(t, db, opts)
}

func newEnvOn(t testing.TB, db *store.DB, opts memory.Options) *env {
	vec, err := embedded.Open(t.Context(), db.Knowledge(), embedded.Options{})
	require.NoError(t, err)
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	opts.Store, opts.Index, opts.Now = db, memory.NewIndex(embed.NewLocal(embed.LocalOptions{Dimension: 384}), vec), c.Now
	svc := memory.New(opts)
	_, err = svc.Sync(t.Context())
	require.NoError(t, err)
	return &env{db: db, vec: vec, svc: svc, clock: c}
}

func (e *env) add(t testing.TB, user, agent, text string, topics ...string) *memory.Memory {
	m, err := e.svc.Add(t.Context(), &memory.Memory{UserID: user, AgentID: agent, Memory: text, Topics: topics})
	require.NoError(t, err)
	return m
}

func texts(ms []memory.Memory) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Memory
	}
	return out
}

func TestRecallRanking(t *testing.T) {
	e := newEnv(t, memory.Options{})
	// Old memories first: 200 days pass before the newer ones.
	e.add(t, "alice", "", "Alice's favourite colour is blue")
	e.add(t, "alice", "", "Alice is allergic to peanuts", "health")
	e.add(t, "alice", "", "Alice works as a nurse at the city hospital", "work")
	e.clock.Add(200 * 24 * time.Hour)
	e.add(t, "alice", "", "Alice's favourite colour is green")
	e.add(t, "alice", "", "Alice went hiking in the Alps last summer", "travel")
	e.add(t, "alice", "", "Alice plays the cello in an amateur orchestra", "hobbies")

	for _, tc := range []struct {
		name, query string
		k           int
		want        []string
	}{
		// Equally relevant: the one updated more recently comes first.
		{"recency breaks a tie", "what is her favourite colour", 2,
			[]string{"Alice's favourite colour is green", "Alice's favourite colour is blue"}},
		// Relevance decides over recency: an old relevant memory beats
		// three fresh unrelated ones.
		{"relevance beats recency", "is she allergic to anything I should avoid cooking", 1,
			[]string{"Alice is allergic to peanuts"}},
		{"topic words count", "where does she work these days", 1,
			[]string{"Alice works as a nurse at the city hospital"}},
		{"k bounds the answer", "Alice", 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.svc.Recall(t.Context(), "alice", "", tc.query, tc.k)
			require.NoError(t, err)
			require.Len(t, got, tc.k)
			if tc.want != nil {
				require.Equal(t, tc.want, texts(got))
			}
		})
	}

	t.Run("recency breaks a tie either way", func(t *testing.T) {
		// The same pair, blue refreshed by an update: now blue is first.
		got, err := e.svc.Recall(t.Context(), "alice", "", "what is her favourite colour", 2)
		require.NoError(t, err)
		blue := "Alice's favourite colour is blue"
		e.clock.Add(24 * time.Hour)
		_, err = e.svc.Update(t.Context(), "alice", got[1].ID, memory.Patch{Memory: &blue})
		require.NoError(t, err)
		got, err = e.svc.Recall(t.Context(), "alice", "", "what is her favourite colour", 2)
		require.NoError(t, err)
		require.Equal(t, []string{blue, "Alice's favourite colour is green"}, texts(got))
	})
	t.Run("empty query: most recent", func(t *testing.T) {
		got, err := e.svc.Recall(t.Context(), "alice", "", " ", 2)
		require.NoError(t, err)
		require.Equal(t, []string{"Alice's favourite colour is blue", "Alice plays the cello in an amateur orchestra"}, texts(got))
	})
	t.Run("an update is found by its new text", func(t *testing.T) {
		got, err := e.svc.Recall(t.Context(), "alice", "", "cello", 1)
		require.NoError(t, err)
		text := "Alice plays the violin in an amateur orchestra"
		_, err = e.svc.Update(t.Context(), "alice", got[0].ID, memory.Patch{Memory: &text})
		require.NoError(t, err)
		got, err = e.svc.Recall(t.Context(), "alice", "", "which instrument does she play, the violin?", 1)
		require.NoError(t, err)
		require.Equal(t, []string{text}, texts(got))
		require.Equal(t, 6, e.vec.Count(memory.ReservedKnowledgeID), "an update replaces its chunk")
	})
}

func TestRecallIsolation(t *testing.T) {
	e := newEnv(t, memory.Options{})
	a := e.add(t, "alice", "", "Alice's bank is Northwind Savings", "finance")
	e.add(t, "alice", "planner", "Alice wants a trip to Japan in April", "travel")
	e.add(t, "alice", "coach", "Alice runs 10 km every Sunday", "fitness")
	b := e.add(t, "bob", "", "Bob's bank is Contoso Credit Union", "finance")

	t.Run("another user's memories are never recalled", func(t *testing.T) {
		got, err := e.svc.Recall(t.Context(), "bob", "", "Alice's bank Northwind Savings", 5)
		require.NoError(t, err)
		require.Equal(t, []string{b.Memory}, texts(got))
	})
	t.Run("an agent sees its own and the user's, not other agents'", func(t *testing.T) {
		got, err := e.svc.Recall(t.Context(), "alice", "planner", "trip running bank", 5)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{a.Memory, "Alice wants a trip to Japan in April"}, texts(got))
		got, err = e.svc.Recall(t.Context(), "alice", "", "trip running bank", 5)
		require.NoError(t, err)
		require.Len(t, got, 3)
	})
	t.Run("isolation does not rest on the index", func(t *testing.T) {
		// A corrupt index entry: Bob's memory filed under Alice.
		dense, err := embed.NewLocal(embed.LocalOptions{Dimension: 384}).Embed(t.Context(), []string{b.Memory})
		require.NoError(t, err)
		require.NoError(t, e.vec.Upsert(t.Context(), memory.ReservedKnowledgeID, []knowledge.Chunk{{
			ID: b.ID, KnowledgeID: memory.ReservedKnowledgeID, DocumentID: b.ID, Text: b.Memory,
			Metadata: map[string]any{"user_id": "alice", "agent_id": ""},
		}}, dense, []map[uint32]float32{{1: 1}}))
		got, err := e.svc.Recall(t.Context(), "alice", "", "Contoso Credit Union bank", 5)
		require.NoError(t, err)
		require.NotContains(t, texts(got), b.Memory)
	})
	t.Run("foreign ids are not found, updated or deleted", func(t *testing.T) {
		_, err := e.svc.Get(t.Context(), "bob", a.ID)
		require.ErrorIs(t, err, memory.ErrNotFound)
		text := "stolen"
		_, err = e.svc.Update(t.Context(), "bob", a.ID, memory.Patch{Memory: &text})
		require.ErrorIs(t, err, memory.ErrNotFound)
		gone, err := e.svc.Delete(t.Context(), "bob", []string{a.ID})
		require.NoError(t, err)
		require.Empty(t, gone)
		got, err := e.svc.Get(t.Context(), "alice", a.ID)
		require.NoError(t, err)
		require.Equal(t, a.Memory, got.Memory)
	})
}

func TestBounds(t *testing.T) {
	e := newEnv(t, memory.Options{MaxPerUser: 4, MaxPerAgent: 2})
	m1 := e.add(t, "alice", "", "one")
	e.clock.Add(time.Minute)
	e.add(t, "alice", "", "two")
	e.clock.Add(time.Minute)
	e.add(t, "alice", "", "three")
	e.clock.Add(time.Minute)
	// Updating "one" makes it the most recently updated: "two" goes first.
	text := "one, updated"
	_, err := e.svc.Update(t.Context(), "alice", m1.ID, memory.Patch{Memory: &text})
	require.NoError(t, err)
	e.clock.Add(time.Minute)
	e.add(t, "alice", "", "four")
	e.clock.Add(time.Minute)
	e.add(t, "alice", "", "five")
	e.add(t, "bob", "", "bob's only memory")

	list := func(q memory.Query) []string {
		ms, _, err := e.svc.List(t.Context(), q)
		require.NoError(t, err)
		return texts(ms)
	}
	require.Equal(t, []string{"five", "four", "one, updated", "three"}, list(memory.Query{UserID: "alice"}))
	require.Equal(t, []string{"bob's only memory"}, list(memory.Query{UserID: "bob"}))

	// The agent's bound drops its oldest memories only.
	for _, s := range []string{"a1", "a2", "a3"} {
		e.clock.Add(time.Minute)
		e.add(t, "alice", "helper", s)
	}
	require.Equal(t, []string{"a3", "a2"}, list(memory.Query{UserID: "alice", AgentID: "helper"}))
	require.Equal(t, []string{"a3", "a2", "five", "four"}, list(memory.Query{UserID: "alice"}))
	require.Equal(t, 5, e.vec.Count(memory.ReservedKnowledgeID), "dropped memories leave the index")
}

func TestDeleteUserAndSync(t *testing.T) {
	e := newEnv(t, memory.Options{})
	for _, s := range []string{"likes jazz", "has two cats", "speaks Portuguese"} {
		e.add(t, "alice", "", s)
	}
	e.add(t, "bob", "", "likes jazz too")
	n, err := e.svc.DeleteUser(t.Context(), "alice")
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, 1, e.vec.Count(memory.ReservedKnowledgeID))
	got, err := e.svc.Recall(t.Context(), "alice", "", "jazz", 5)
	require.NoError(t, err)
	require.Empty(t, got)

	// A restart on the same database finds the index in step: nothing to
	// re-index.
	e2 := newEnvOn(t, e.db, memory.Options{})
	n, err = e2.svc.Sync(t.Context())
	require.NoError(t, err)
	require.Zero(t, n)
	got, err = e2.svc.Recall(t.Context(), "bob", "", "which music", 5)
	require.NoError(t, err)
	require.Equal(t, []string{"likes jazz too"}, texts(got))

	// An index that lost its chunks (a new vector store) is rebuilt from SQL.
	vec, err := embedded.Open(t.Context(), embedded.NewMemoryRepository(), embedded.Options{})
	require.NoError(t, err)
	svc := memory.New(memory.Options{Store: e.db, Index: memory.NewIndex(embed.NewLocal(embed.LocalOptions{Dimension: 384}), vec)})
	n, err = svc.Sync(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err = svc.Recall(t.Context(), "bob", "", "which music", 5)
	require.NoError(t, err)
	require.Equal(t, []string{"likes jazz too"}, texts(got))
}

func TestAddValidates(t *testing.T) {
	e := newEnv(t, memory.Options{})
	for _, tc := range []struct {
		name string
		m    memory.Memory
	}{
		{"no user", memory.Memory{Memory: "x"}},
		{"empty", memory.Memory{UserID: "u", Memory: "  "}},
		{"comma in topic", memory.Memory{UserID: "u", Memory: "x", Topics: []string{"a,b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Add(t.Context(), &tc.m)
			require.ErrorIs(t, err, memory.ErrInvalid)
		})
	}
	m := e.add(t, "u", "", " text ", " Food ", "food", "")
	require.Equal(t, "text", m.Memory)
	require.Equal(t, []string{"food"}, m.Topics)
}

// TestConcurrentUse: adds, updates, recalls and deletes from several
// goroutines at once keep SQL and the index consistent (run with -race).
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, memory.Options{MaxPerUser: 20})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			user := []string{"alice", "bob"}[w%2]
			for i := range 15 {
				m, err := e.svc.Add(t.Context(), &memory.Memory{UserID: user, Memory: fmt.Sprintf("%s fact %d from worker %d", user, i, w)})
				if !assert.NoError(t, err) {
					return
				}
				if _, err := e.svc.Recall(t.Context(), user, "", "fact from worker", 3); !assert.NoError(t, err) {
					return
				}
				if i%5 == 0 {
					_, err = e.svc.Delete(t.Context(), user, []string{m.ID})
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Wait()
	for _, user := range []string{"alice", "bob"} {
		n, err := e.db.CountMemories(t.Context(), user, "")
		require.NoError(t, err)
		require.LessOrEqual(t, n, 20, "the bound holds")
		require.Greater(t, n, 10)
	}
	st, err := e.db.MemoryIndexState(t.Context())
	require.NoError(t, err)
	require.Equal(t, st.Count, e.vec.Count(memory.ReservedKnowledgeID), "the index holds what SQL holds")
}
